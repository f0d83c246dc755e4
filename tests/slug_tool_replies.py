"""The replayed model's side of evolving one small tool, ``slugify_title``: the request, the orchestrator's plan
and the generator's reply with the tool and its tests (which pass and cover every line)."""

from __future__ import annotations

import json

REQUEST = "a tool that turns page titles into URL slugs"
PLAN = json.dumps({"tool_name": "slugify_title", "description": "Turn a title into a URL slug.", "requirements": []})
GOOD = '''Here is the tool.

```python tool.py
import re


def slugify_title(title: str, separator: str = "-") -> str:
    """Turn a page title into a lowercase URL slug."""
    words = re.findall(r"[a-z0-9]+", title.lower())
    return separator.join(words)
```

```python test_tool.py
from tool import slugify_title


def test_slug():
    assert slugify_title("Hello, World!") == "hello-world"


def test_separator():
    assert slugify_title("a b", separator="_") == "a_b"
```
'''
