"""Reading YAML configs: numbers as people write them, duplicate keys refused, errors with line and column."""
import re

import yaml


class ConfigError(Exception):
    """A user's mistake in a config file or an override; the message says where and what is allowed."""


class Loader(yaml.SafeLoader):
    """SafeLoader that reads 1e-3 as a number (plain YAML 1.1 wants 1.0e-3) and refuses duplicate keys."""

    def construct_mapping(self, node, deep=False):
        seen = {}
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=deep)
            if isinstance(key, (str, int, float, bool)) and key in seen:
                raise yaml.constructor.ConstructorError(
                    None, None, f"duplicate key '{key}' (first given on line {seen[key] + 1})", key_node.start_mark)
            seen[key] = key_node.start_mark.line
        return super().construct_mapping(node, deep)


Loader.add_implicit_resolver(
    "tag:yaml.org,2002:float",
    re.compile(r"^[-+]?(?:[0-9][0-9_]*)(?:\.[0-9_]*)?[eE][-+]?[0-9]+$"),
    list("-+0123456789"))


def parse_yaml(text, source):
    """The object in a YAML text; ConfigError with line and column when it is malformed."""
    try:
        return yaml.load(text, Loader=Loader)
    except yaml.MarkedYAMLError as e:
        mark = e.problem_mark or e.context_mark
        where = f"line {mark.line + 1}, column {mark.column + 1}" if mark else "somewhere"
        context = f" ({e.context})" if e.context and e.problem else ""
        raise ConfigError(f"{source}: {where}: not valid YAML: {e.problem or e.context}{context}.") from None
    except yaml.YAMLError as e:
        raise ConfigError(f"{source}: not valid YAML: {e}.") from None


def read_mapping(path, sections):
    """The mapping in the YAML file at `path` ({} for an empty file); `sections` names what a config holds."""
    try:
        with open(path, encoding="utf-8") as f:
            text = f.read()
    except FileNotFoundError:
        raise ConfigError(f"{path}: no such config file.") from None
    except (IsADirectoryError, UnicodeDecodeError, PermissionError) as e:
        raise ConfigError(f"{path}: cannot be read as a YAML config ({e.__class__.__name__}).") from None
    user = parse_yaml(text, path)
    if user is None:
        return {}
    if not isinstance(user, dict):
        kind = "a list" if isinstance(user, list) else f"{type(user).__name__} {user!r}"[:60]
        raise ConfigError(f"{path}: a config is a mapping of sections ({', '.join(sections)}), got {kind}.")
    return user


def dump(config):
    """The config as YAML text, keys in the order given."""
    return yaml.safe_dump(config, sort_keys=False, default_flow_style=None, allow_unicode=True, width=100)
