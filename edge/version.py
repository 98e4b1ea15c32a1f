"""The kiosk software version, sent in every case header and status message."""

__version__ = "0.1.0"


def software_version() -> str:
    """The version string the kiosk reports (``dermkiosk-edge/<version>``)."""
    return f"dermkiosk-edge/{__version__}"
