"""Appliance configuration: one YAML file, validated with every error's path."""

from speaker.config.load import (
    ConfigError,
    ConfigIssue,
    ConfigUnreadableError,
    format_path,
    load_config,
    parse_text,
)
from speaker.config.model import AppConfig

__all__ = [
    "AppConfig",
    "ConfigError",
    "ConfigIssue",
    "ConfigUnreadableError",
    "format_path",
    "load_config",
    "parse_text",
]
