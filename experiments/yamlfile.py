"""Reading YAML configs: numbers as people write them, duplicate keys refused, errors with line
and column.

A config is a few KB of plain settings, so what no config needs is refused before it can cost
time or memory: files over MAX_BYTES, aliases (`*name`, whose expansion can grow without bound),
nesting deeper than MAX_DEPTH, and keys that are not plain values.
"""
import re
from collections.abc import Hashable
from pathlib import Path

import yaml

MAX_BYTES = 64 * 1024
MAX_DEPTH = 20


class ConfigError(Exception):
    """A user's mistake in a config file or an override; the message says where and what fits."""


class Loader(yaml.SafeLoader):
    """SafeLoader that reads 1e-3 as a number (plain YAML 1.1 wants 1.0e-3) and refuses duplicate
    keys."""

    def construct_mapping(self, node, deep=False):
        seen = {}
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=deep)
            if not isinstance(key, Hashable) or isinstance(key, tuple):
                raise yaml.constructor.ConstructorError(
                    None, None, "a key must be a plain word or number, not a list or mapping",
                    key_node.start_mark)
            if isinstance(key, (str, int, float, bool)) and key in seen:
                raise yaml.constructor.ConstructorError(
                    None, None, f"duplicate key '{key}' (first given on line {seen[key] + 1})",
                    key_node.start_mark)
            seen[key] = key_node.start_mark.line
        return super().construct_mapping(node, deep)


Loader.add_implicit_resolver(
    "tag:yaml.org,2002:float",
    re.compile(r"^[-+]?(?:[0-9][0-9_]*)(?:\.[0-9_]*)?[eE][-+]?[0-9]+$"),
    list("-+0123456789"))


def check_shape(text, source):
    """Refuses aliases and deep nesting by reading YAML's event stream, which takes no recursion."""
    depth = 0
    for event in yaml.parse(text, Loader=Loader):
        if isinstance(event, yaml.AliasEvent):
            mark = event.start_mark
            raise ConfigError(f"{source}: line {mark.line + 1}, column {mark.column + 1}: YAML "
                              "aliases "
                              "(*name) are not accepted in configs; write the value out.")
        if isinstance(event, (yaml.MappingStartEvent, yaml.SequenceStartEvent)):
            depth += 1
            if depth > MAX_DEPTH:
                mark = event.start_mark
                raise ConfigError(f"{source}: line {mark.line + 1}: nested more than {MAX_DEPTH} "
                                  "levels "
                                  "deep; a config needs a few.")
        elif isinstance(event, (yaml.MappingEndEvent, yaml.SequenceEndEvent)):
            depth -= 1


def parse_yaml(text, source):
    """The object in a YAML text; ConfigError with line and column when it is malformed."""
    try:
        check_shape(text, source)
        return yaml.load(text, Loader=Loader)
    except yaml.MarkedYAMLError as e:
        mark = e.problem_mark or e.context_mark
        where = f"line {mark.line + 1}, column {mark.column + 1}" if mark else "somewhere"
        context = f" ({e.context})" if e.context and e.problem else ""
        problem = e.problem or e.context
        raise ConfigError(f"{source}: {where}: not valid YAML: {problem}{context}.") from None
    except yaml.YAMLError as e:
        raise ConfigError(f"{source}: not valid YAML: {e}.") from None
    except ValueError as e:  # a number YAML cannot make: Python's limit of 4300 digits
        raise ConfigError(f"{source}: a value YAML cannot read: {str(e).split(';')[0]}.") from None


def read_mapping(path, sections):
    """The mapping in the YAML file at `path` ({} for an empty file); `sections` names what a
    config holds."""
    try:
        with open(path, "rb") as f:
            data = f.read(MAX_BYTES + 1)  # at most: /dev/zero never ends
        if len(data) > MAX_BYTES:
            raise ConfigError(f"{path}: larger than {MAX_BYTES // 1024} KB; a config is a few KB "
                              "of text.")
        text = data.decode("utf-8")
    except FileNotFoundError:
        hint = f" (did you mean {path}.yaml?)" if Path(f"{path}.yaml").is_file() else ""
        raise ConfigError(f"{path}: no such config file{hint}.") from None
    except (IsADirectoryError, UnicodeDecodeError, PermissionError) as e:
        raise ConfigError(f"{path}: cannot be read as a YAML config "
                          f"({e.__class__.__name__}).") from None
    except OSError as e:
        raise ConfigError(f"{path}: cannot be read ({e.strerror or e}).") from None
    user = parse_yaml(text, path)
    if user is None:
        return {}
    if not isinstance(user, dict):
        kind = "a list" if isinstance(user, list) else f"{type(user).__name__} {user!r}"[:60]
        raise ConfigError(f"{path}: a config is a mapping of sections ({', '.join(sections)}), "
                          f"got {kind}.")
    return user


def dump(config):
    """The config as YAML text, keys in the order given."""
    return yaml.safe_dump(config, sort_keys=False, default_flow_style=None, allow_unicode=True,
                          width=100)
