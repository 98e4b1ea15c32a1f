"""The HTTP security headers both sides' pages send: the kiosk page and the centre's dashboard.

Both show patient photographs, so both send the same strict policy: same-origin scripts, styles and
images only (no inline script or style), no framing, no MIME sniffing, no referrer.
"""

from __future__ import annotations

CSP = ("default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self'; connect-src 'self'; "
       "font-src 'self'; object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'")

SECURITY_HEADERS = {
    "Content-Security-Policy": CSP,
    "X-Frame-Options": "DENY",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cross-Origin-Opener-Policy": "same-origin",
    "Permissions-Policy": "camera=(), microphone=(), geolocation=()",
}


def set_security_headers(headers) -> None:
    """Add each of :data:`SECURITY_HEADERS` that a response (``headers``: werkzeug's Headers) does not set itself."""
    for name, value in SECURITY_HEADERS.items():
        headers.setdefault(name, value)
