"""DermKiosk kiosk side (``edge``): camera -> quality -> classifier -> outbox -> link.

Imports flow one way along that chain; ``service`` ties the parts together in an
ordered start and stop, ``web`` serves the kiosk page on localhost and
``__main__`` is the command line (``python -m edge run|classify|quality|capture-demo``).
"""

from .version import __version__

__all__ = ["__version__"]
