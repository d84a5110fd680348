"""Settings from flags, environment and a TOML file named at run time: the mechanism both
`relay-edge` and `relay-teacher` build their own settings object on.

    class MySettings(FileSettings): ...
    settings = load_with_file(MySettings, config_file=path, values=flags)
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, TypeVar

from pydantic import ValidationError
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    TomlConfigSettingsSource,
)

from relay_common.errors import SettingsFileError


class FileSettings(BaseSettings):
    """Sources in order of precedence: init values (flags), environment, the TOML file."""

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        # The TOML source reads `model_config["toml_file"]`: unset here, set by load_with_file.
        return init_settings, env_settings, TomlConfigSettingsSource(settings_cls)


SettingsT = TypeVar("SettingsT", bound=FileSettings)


def load_with_file(
    settings_cls: type[SettingsT], *, config_file: Path | None, values: dict[str, Any]
) -> SettingsT:
    """`settings_cls` from `values`, the environment and `config_file` (if any).

    Raises pydantic's ValidationError for bad values and SettingsFileError for a missing or
    unreadable file.
    """
    if config_file is not None:
        if not config_file.is_file():
            raise SettingsFileError(
                f"config file not found: {config_file}; give an existing TOML file"
            )
        # The file is class-level configuration in pydantic-settings: a subclass per file.
        settings_cls = type(
            f"{settings_cls.__name__}FromFile",
            (settings_cls,),
            {"model_config": {**settings_cls.model_config, "toml_file": config_file}},
        )
    try:
        return settings_cls(**values)
    except ValidationError:
        raise
    except ValueError as exc:  # tomllib.TOMLDecodeError: the file is not valid TOML
        raise SettingsFileError(f"config file {config_file} is not valid TOML: {exc}") from exc
