"""The ``[service]`` section of the centre's config: who the letters and the kiosk's tasks come from.

The GP and patient letters (:mod:`dashboard.letters`) name the teledermatology service and say how
to reach it; nothing here is a secret. Unknown fields are refused like everywhere in the config.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field


class ServiceConfig(BaseModel):
    """The service's name and contact details as printed on every letter."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = Field(default="DermKiosk Teledermatology Service", min_length=3, max_length=120)
    #: Postal address, one line per entry (printed under the name).
    address: list[str] = Field(default_factory=list, max_length=6)
    phone: str = Field(default="", max_length=40)
    email: str = Field(default="", max_length=120)
    #: When the phone is answered, e.g. "Monday to Friday, 9am to 5pm".
    hours: str = Field(default="", max_length=120)
    #: Who signs the letters on the service's behalf when no reader name applies.
    sign_off: str = Field(default="The dermatology team", max_length=120)
