"""Display names and direct message channels of the workspace's users, cached."""

from __future__ import annotations

import logging
from collections import OrderedDict

from slack_sdk.errors import SlackApiError
from slack_sdk.web.async_client import AsyncWebClient

from adapters.slack_errors import error_code

logger = logging.getLogger(__name__)

CACHE_MAX_ENTRIES = 10000


class BoundedCache(OrderedDict):
    """A mapping that drops the entry stored longest ago once it holds more than ``CACHE_MAX_ENTRIES``."""

    def remember(self, key, value):
        self[key] = value
        self.move_to_end(key)
        if len(self) > CACHE_MAX_ENTRIES:
            self.popitem(last=False)
        return value


class SlackDirectory:
    """Looks up display names (``users.info``) and opens direct messages (``conversations.open``)."""

    def __init__(self, client: AsyncWebClient) -> None:
        self.client = client
        self._names = BoundedCache()
        self._direct_channels = BoundedCache()

    async def display_name(self, user_id: str) -> str:
        """Look up the user's display name, real name or handle; fall back to the user id when ``users.info`` fails."""
        if user_id in self._names:
            return self._names[user_id]
        try:
            response = await self.client.users_info(user=user_id)
        except SlackApiError as exc:
            logger.warning("users.info for %s failed (%s); using the user id as the name",
                           user_id, error_code(exc))
            return user_id
        user = response.get("user") or {}
        profile = user.get("profile") or {}
        name = profile.get("display_name") or profile.get("real_name") or user.get("real_name") or user.get("name")
        return self._names.remember(user_id, name or user_id)

    def cached_direct_channel(self, user_id: str) -> str | None:
        """Return the direct message channel with the user if it was opened before, without calling Slack."""
        return self._direct_channels.get(user_id)

    async def direct_channel(self, user_id: str) -> str:
        """Open (or reuse) the bot's direct message channel with the user and return its id.

        Raises:
            SlackApiError: ``conversations.open`` failed.
        """
        if user_id in self._direct_channels:
            return self._direct_channels[user_id]
        response = await self.client.conversations_open(users=user_id)
        return self._direct_channels.remember(user_id, response["channel"]["id"])
