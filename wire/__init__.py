"""The one wire contract shared by the kiosk (``edge``) and the centre (``dashboard``).

``topics`` names the MQTT topics, ``messages`` holds the pydantic models of
every payload, ``codec`` frames a case with its raw JPEG bytes, and
``tomlconfig`` loads a TOML file into a pydantic model with errors that name
the file and the field.
"""

__version__ = "0.1.0"
