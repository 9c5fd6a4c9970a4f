"""Controllers: turn what users declared into what the data plane uses, through the API only."""

from nanokube.controllers.manager import run_controllers
from nanokube.controllers.settings import ControllerSettings

__all__ = ["ControllerSettings", "run_controllers"]
