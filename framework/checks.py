"""What a setting accepts, stated once: constructors check with it, configs and --help read it.

A check is written as the annotation of a constructor argument,

    def __init__(self, p: Real(0, 1, high_open=True) = 0.5, rng=None, name=None):

and `@checked` runs it before the body: a bad value raises ValueError naming the class, the
argument and what is allowed. `settings(cls)` lists a class's checked arguments with their
defaults, which is how a config learns a layer's or optimizer's settings without restating them.
"""
import copy
import functools
import inspect
import math
import unicodedata

REQUIRED = inspect.Parameter.empty  # the default of an argument that has none


class Invalid(ValueError):
    """A check's complaint about one value; `path` leads from the checked value to the culprit.
    `more`: complaints about other values of the same mapping (resolve_section reports all)."""

    def __init__(self, problem, path=(), more=()):
        super().__init__(problem)
        self.problem, self.path, self.more = problem, tuple(path), list(more)

    def under(self, prefix):
        """The same complaints, their paths led from `prefix` (one level up)."""
        return Invalid(self.problem, tuple(prefix) + self.path,
                       [m.under(prefix) for m in self.more])

    def each(self):
        """Every complaint, one Invalid each, the first first."""
        return [Invalid(self.problem, self.path), *(m for more in self.more for m in more.each())]

    @staticmethod
    def all(problems):
        """One Invalid carrying every complaint of `problems` (a non-empty list)."""
        return Invalid(problems[0].problem, problems[0].path, problems[1:])


def describe(value):
    """A value as a user would recognise it in their YAML or Python."""
    if isinstance(value, bool):
        return str(value).lower()
    kinds = {int: "the integer", float: "the number", str: "the text",
             list: "a list", tuple: "a list", dict: "a mapping", type(None): "null"}
    kind = kinds.get(type(value), type(value).__name__)
    if value is None or isinstance(value, (list, tuple, dict)):
        return kind
    shown = repr(value)
    return f"{kind} {shown if len(shown) <= 60 else shown[:57] + '...'}"


def bounds(low, high, low_open=False, high_open=False):
    """'≥ 0 and < 1' for the interval [0, 1)."""
    parts = []
    if low is not None:
        parts.append(f"{'>' if low_open else '≥'} {low}")
    if high is not None:
        parts.append(f"{'<' if high_open else '≤'} {high}")
    return " and ".join(parts)


def is_number(value):
    return isinstance(value, (int, float)) and not isinstance(value, bool)


class Check:
    """Base: `allowed` says in words what fits; calling returns the (normalised) value or raises
    Invalid."""

    allowed = "anything"

    def __call__(self, value):
        return value

    def __repr__(self):
        return f"<{self.allowed}>"


class Integer(Check):
    """A whole number within [low, high]."""

    def __init__(self, low=None, high=None):
        self.low, self.high = low, high
        self.allowed = " ".join(filter(None, ["an integer", bounds(low, high)]))

    def __call__(self, value):
        if isinstance(value, bool) or not isinstance(value, int):
            if hasattr(value, "__index__") and not isinstance(value, bool):  # numpy integers
                value = int(value)
            else:
                raise Invalid(f"wrong type: expected {self.allowed}, got {describe(value)}")
        if ((self.low is not None and value < self.low)
                or (self.high is not None and value > self.high)):
            shown = value if abs(value) < 10**30 else f"a {len(str(abs(value)))}-digit integer"
            raise Invalid(f"out of range: {shown} is not {bounds(self.low, self.high)}")
        return value


class Real(Check):
    """A finite real number (integers accepted) within the bounds; returned as a Python float."""

    def __init__(self, low=None, high=None, low_open=False, high_open=False):
        self.low, self.high, self.low_open, self.high_open = low, high, low_open, high_open
        self.range = bounds(low, high, low_open, high_open)
        self.allowed = " ".join(filter(None, ["a number", self.range]))

    def __call__(self, value):
        if not is_number(value):
            if hasattr(value, "dtype") and getattr(value, "ndim", 1) == 0:  # numpy scalars
                value = value.item()
            if not is_number(value):
                raise Invalid(f"wrong type: expected {self.allowed}, got {describe(value)}")
        try:
            number = float(value)
        except OverflowError:  # an integer beyond float range
            raise Invalid(f"out of range: a {len(str(abs(value)))}-digit integer is not "
                          f"{self.range or 'a finite number'}") from None
        low, high = self.low, self.high
        if (not math.isfinite(number)
                or (low is not None and (number < low or self.low_open and number == low))
                or (high is not None and (number > high or self.high_open and number == high))):
            raise Invalid(f"out of range: {value} is not {self.range or 'finite'}")
        return number


class OneOf(Check):
    """One of the given words."""

    def __init__(self, *options):
        self.options = options
        self.allowed = "one of " + ", ".join(options)

    def __call__(self, value):
        if not isinstance(value, str) or value not in self.options:
            raise Invalid(f"{describe(value)} is not allowed{close_match(value, self.options)}; "
                          f"expected {self.allowed}")
        return value


class Flag(Check):
    """true or false."""

    allowed = "true or false"

    def __call__(self, value):
        if not isinstance(value, bool):
            raise Invalid(f"wrong type: expected true or false, got {describe(value)}")
        return value


class Either(Check):
    """What any of the given checks accepts (tried in order)."""

    def __init__(self, *checks):
        self.checks = checks
        self.allowed = " or ".join(check.allowed for check in checks)

    def __call__(self, value):
        for check in self.checks:
            try:
                return check(value)
            except Invalid:
                pass
        raise Invalid(f"{describe(value)} is not allowed; expected {self.allowed}")


class Optional(Check):
    """null (None), or what `check` accepts."""

    def __init__(self, check):
        self.check = check
        self.allowed = f"{check.allowed}, or null"

    def __call__(self, value):
        return None if value is None else self.check(value)


class Size(Check):
    """A positive integer, or a pair of them (height, width); returned as a pair."""

    def __init__(self, low=1):
        self.one = Integer(low)
        self.allowed = f"{self.one.allowed}, or a pair of them (height, width)"

    def __call__(self, value):
        if isinstance(value, (list, tuple)):
            if len(value) != 2:
                raise Invalid(f"wrong type: expected {self.allowed}, got a list of {len(value)}")
            return tuple(self.one(v) for v in value)
        value = self.one(value)
        return (value, value)


class Text(Check):
    """A non-empty text without control characters (names and paths), in UTF-8."""

    allowed = "a text"

    def __call__(self, value):
        if not isinstance(value, str) or not value:
            raise Invalid(f"wrong type: expected a non-empty text, got {describe(value)}")
        bad = next((c for c in value if unicodedata.category(c) in ("Cc", "Cs")), None)
        if bad is not None:
            what = (f"the control character {bad!r}" if unicodedata.category(bad) == "Cc"
                    else f"{bad!r}, a lone surrogate that UTF-8 cannot encode")
            raise Invalid(f"the text {value!r} holds {what}; names and paths cannot")
        return value


class TextList(Check):
    """A list of web addresses or folders (or one text, comma-separated)."""

    allowed = "a list of web addresses or folders (or one text, comma-separated)"

    def __call__(self, value):
        if isinstance(value, str):
            value = [part.strip() for part in value.split(",") if part.strip()]
        if not isinstance(value, list) or not value:
            raise Invalid(f"wrong type: expected {self.allowed}, got {describe(value)}")
        return [Text()(v) for v in value]


def close_match(word, options):
    """' (did you mean 'x'?)' for a near miss, else ''."""
    import difflib  # only on the error path

    found = difflib.get_close_matches(str(word), [str(o) for o in options], n=1, cutoff=0.6)
    return f" (did you mean '{found[0]}'?)" if found else ""


def settings(cls):
    """{argument: (default or REQUIRED, check)} for the checked arguments of cls's constructor."""
    signature = inspect.signature(cls.__init__)
    return {name: (p.default, p.annotation) for name, p in signature.parameters.items()
            if isinstance(p.annotation, Check)}


def resolve_section(user, schema, path=()):
    """Defaults of `schema` ({key: (default or REQUIRED, check)}, or such mappings nested)
    overlaid with the mapping `user`, every value checked: a config's section, or a class's
    constructor arguments against settings(cls). Unknown, missing or bad keys raise one Invalid
    that names them all (Invalid.each), each with its path."""
    if user is None:
        user = {}
    if not isinstance(user, dict):
        raise Invalid(f"wrong type: expected a mapping with keys {', '.join(schema)}, got "
                      f"{describe(user)}", path)
    problems = []  # every unknown, missing or bad key of the mapping, not only the first
    for key in user:
        if key not in schema:
            allowed = (f"allowed keys here: {', '.join(schema)}" if schema
                       else "it takes no settings")
            problems.append(Invalid(f"unknown key '{key}'{close_match(key, schema)}; {allowed}",
                                    path + (key,)))
    resolved = {}
    for key, spec in schema.items():
        try:
            if isinstance(spec, dict):  # a nested section: its complaints have their paths
                resolved[key] = resolve_section(user.get(key), spec, path + (key,))
                continue
            default, check = spec
            if key not in user and default is REQUIRED:
                raise Invalid(f"missing; it is required ({check.allowed})")
            resolved[key] = check(copy.deepcopy(user.get(key, default)))
        except Invalid as e:
            problems += e.each() if isinstance(spec, dict) else e.under(path + (key,)).each()
    if problems:
        raise Invalid.all(problems)
    return resolved


def checked(init):
    """Decorator for a constructor: each argument annotated with a Check is checked (and normalised)
    before the body runs; a bad one raises Invalid (a ValueError) naming the class and argument.
    The checked values are kept as `self.arguments` ({name: value}): with them the object can
    be made again (a checkpoint rebuilds its model so)."""
    signature = inspect.signature(init)
    checks = {name: p.annotation for name, p in signature.parameters.items()
              if isinstance(p.annotation, Check)}

    @functools.wraps(init)
    def checked_init(self, *args, **kwargs):
        bound = signature.bind(self, *args, **kwargs)
        bound.apply_defaults()
        for name, check in checks.items():
            try:
                bound.arguments[name] = check(bound.arguments[name])
            except Invalid as e:
                raise Invalid(f"{type(self).__name__}: {name}: {e.problem}", (name,)) from None
        self.arguments = {name: bound.arguments[name] for name in checks}
        init(*bound.args, **bound.kwargs)
    checked_init.checked_arguments = tuple(checks)  # what registration verifies (registry.py)
    return checked_init


def checked_arguments(init):
    """The arguments a constructor made with @checked checks and keeps; () for any other."""
    return getattr(init, "checked_arguments", ())
