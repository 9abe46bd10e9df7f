"""Run the 1EdTech Open Badges 2.0 validator on a badge that careerbot serves on loopback.

This script runs under the validator's own Python 3.7 virtual environment
(the ``openbadges`` package on PyPI), not under careerbot's. Usage::

    python ob_validator_runner.py ASSERTION_URL CONTEXT_URL EMAIL

The validator fetches the Open Badges JSON-LD context from
https://w3id.org/openbadges/v2. This script sends that request to
CONTEXT_URL instead (a stored copy that the test serves on loopback) and
refuses every request to a host other than 127.0.0.1 or localhost. It
prints the validator's result as JSON on standard output.
"""

import json
import sys

import requests

CONTEXT_URLS = (
    "https://w3id.org/openbadges/v2",
    "https://openbadgespec.org/v2/context.json",
)
LOOPBACK_HOSTS = ("127.0.0.1", "localhost")


def route_requests(context_url):
    """Patch requests so the context comes from ``context_url`` and nothing leaves loopback."""
    send_request = requests.Session.request

    def request(self, method, url, *args, **kwargs):
        if url.rstrip("/") in CONTEXT_URLS:
            url = context_url
        host = requests.utils.urlparse(url).hostname
        if host not in LOOPBACK_HOSTS:
            raise requests.exceptions.ConnectionError("blocked: {} is not on loopback".format(url))
        return send_request(self, method, url, *args, **kwargs)

    requests.Session.request = request


def main(argv):
    assertion_url, context_url, email = argv[1:4]
    route_requests(context_url)

    from openbadges import verify

    result = verify(assertion_url, recipient_profile={"email": email}, use_cache=False)
    json.dump(result, sys.stdout, indent=2, default=str)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
