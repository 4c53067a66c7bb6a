"""Start a processing job by webhook (issue 14): POST its job.json to a URL with a bearer token.

TLS is always verified (`ca_bundle` adds a lab CA and wins over REQUESTS_CA_BUNDLE in the environment). The token
travels only in the Authorization header; no message names it or the URL's path and query, only the host.
Redirects are not followed, so the token never goes anywhere but the configured URL.
"""

from __future__ import annotations

from pathlib import Path
from urllib.parse import urlsplit

import niquests

from tui.core.errors import MrishareError


def post_job(url: str, token: str, job_json: bytes, ca_bundle: Path | None, timeout_s: float) -> None:
    """POST `job_json` to `url`; a one-line error (naming the host only) unless the answer is 2xx."""
    host = urlsplit(url).netloc
    verify: str | bool = str(ca_bundle) if ca_bundle else True
    try:
        with niquests.Session() as session:
            resp = session.post(url, data=job_json, timeout=timeout_s, verify=verify, allow_redirects=False,
                                headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json"})
    except niquests.exceptions.SSLError:
        raise MrishareError("webhook: TLS certificate not trusted (set ca_bundle for a lab CA)", host) from None
    except niquests.exceptions.RequestException as exc:
        raise MrishareError(f"webhook: no answer ({type(exc).__name__})", host) from None
    code = resp.status_code or 0
    if not 200 <= code < 300:
        raise MrishareError(f"webhook answered {code}" + (" (token refused?)" if code in (401, 403) else ""), host)
