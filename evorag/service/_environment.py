"""The environments evorag runs on, checked: its own Python environment and the tools' (``evorag doctor``)."""

from __future__ import annotations

from evorag.principals import Principal
from evorag.service._context import ServiceContext
from evorag.tools.environment_doctor import DoctorReport, diagnose
from evorag.tools.tool_envs import ToolEnvironments


class EnvironmentService:
    def __init__(self, ctx: ServiceContext) -> None:
        self._ctx = ctx

    def doctor(self, *, principal: Principal | None = None) -> DoctorReport:
        """``pip check``, drift of evorag's declared requirements, the tools' environments and the tools' union
        lock (operator role). Reads only; opens no part of the service (the plugins repository is read as files)."""
        self._ctx.check(principal, "doctor")
        settings = self._ctx.settings
        plugins = settings.plugins_path if (settings.plugins_path / ".git").is_dir() else None
        return diagnose(ToolEnvironments(settings.envs_path, timeout=settings.tool_env_timeout), plugins)
