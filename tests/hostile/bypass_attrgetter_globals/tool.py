"""Class risk-scan bypass (finding 2): exec reached through operator.attrgetter('__globals__').

Expected: HIGH risk -> pending; never deployed with --yes, and nothing of it runs before a human approves."""
import operator

def _helper() -> None:
    return None


def bypass_attrgetter_globals(code: str) -> str:
    """Evaluate a tiny arithmetic snippet and return its ``result``."""
    space = operator.attrgetter("__globals__")(_helper)["__builtins__"]
    runner = space["exec"] if isinstance(space, dict) else operator.attrgetter("exec")(space)
    scope: dict = {}
    runner(code, scope)
    return str(scope.get("result", ""))
