"""Model costs: every call's tokens (AutoGen's ReplayChatCompletionClient reports usage) attributed to the
principal and operation acting, priced per model, totalled per UTC day, and a daily budget that stops priced
calls before they are made. The ledger is the real SQLite one under EVORAG_HOME."""

from __future__ import annotations

import asyncio
import json

import pytest
from autogen_core.models import UserMessage
from autogen_ext.models.replay import ReplayChatCompletionClient
from evorag.tools.costs import FREE, BudgetExceededError, CostLedger, metering, price_of

from evorag.cli import main
from evorag.principals import Principal, Role
from evorag.service import Evorag

PRICES = {"openai:gpt-test": {"input": 1.0, "output": 2.0}, "cheap-model": {"input": 0.5, "output": 0.5}}
ALICE = Principal("alice", Role.OPERATOR, via="mcp")
BOB = Principal("bob", Role.OPERATOR, via="ui")


def ask(client, text: str) -> None:
    asyncio.run(client.create([UserMessage(content=text, source="user")]))


def test_prices_by_label_then_name_and_free_local_models() -> None:
    assert price_of("openai:gpt-test", PRICES).cost(1000, 500) == pytest.approx(2.0)
    assert price_of("ollama:cheap-model", PRICES).cost(2000, 0) == pytest.approx(1.0)  # by the name alone
    assert price_of("local:smollm2", PRICES) == FREE and price_of("none", PRICES) == FREE
    assert price_of("openai:unknown", PRICES) is None


def test_calls_are_attributed_to_principal_and_operation(evorag_home) -> None:
    replies = ["one two three", "four five", "six", "seven eight nine ten"]
    with Evorag(home=evorag_home, model_client=ReplayChatCompletionClient(replies), model_name="openai:gpt-test",
                model_prices=PRICES) as rag:
        client = rag.parts.model_client("agents")
        with rag._context.acting(ALICE, "ask"):
            ask(client, "what is a crawl")  # 4 prompt tokens, 3 completion
            ask(client, "and a source")  # 3 + 2
        with rag._context.acting(BOB, "evolve"), metering(agent="tool_generator"):
            ask(client, "write a tool now please")  # 5 + 1
        ask(client, "x")  # nobody named: the service's own principal, operation "other"

        report = rag.costs()
        assert report.calls == 4
        assert report.prompt_tokens == 4 + 3 + 5 + 1 and report.completion_tokens == 3 + 2 + 1 + 4
        principals = {r.key: r for r in report.by_principal}
        assert principals["alice"].calls == 2 and principals["alice"].prompt_tokens == 7
        assert principals["alice"].cost_usd == pytest.approx((7 * 1.0 + 5 * 2.0) / 1000)
        assert principals["bob"].cost_usd == pytest.approx((5 * 1.0 + 1 * 2.0) / 1000)
        operations = {r.key: r.calls for r in report.by_operation}
        assert operations == {"ask": 2, "evolve": 1, "other": 1}
        assert {r.key: r.calls for r in report.by_agent} == {"-": 3, "tool_generator": 1}
        assert report.total_usd == pytest.approx(sum(r.cost_usd for r in report.by_principal))
        assert report.budget_usd is None and report.remaining_usd is None
        # Another day has nothing.
        assert rag.costs(day="2001-01-01").calls == 0
        with pytest.raises(Exception, match="YYYY-MM-DD"):
            rag.costs(day="yesterday")
        with pytest.raises(Exception, match="costs"):
            rag.costs(principal=Principal("guest", Role.READER))


def test_daily_totals_are_per_utc_day(tmp_path) -> None:
    now = [1_764_892_800.0 + 23 * 3600]  # 2025-12-05 23:00 UTC
    ledger = CostLedger(tmp_path / "costs.sqlite3", prices=PRICES, clock=lambda: now[0])
    ledger.record(model="openai:gpt-test", prompt_tokens=1000, completion_tokens=0, principal="alice")
    now[0] += 2 * 3600  # past midnight
    ledger.record(model="openai:gpt-test", prompt_tokens=0, completion_tokens=1000, principal="alice")
    ledger.record(model="openai:mystery", prompt_tokens=10, completion_tokens=10, principal="bob")
    first, second = ledger.report("2025-12-05"), ledger.report()
    assert second.day == "2025-12-06"
    assert (first.calls, first.total_usd) == (1, pytest.approx(1.0))
    assert (second.calls, second.total_usd) == (2, pytest.approx(2.0))
    unpriced = {r.key: r.unpriced_calls for r in second.by_model}
    assert unpriced == {"openai:gpt-test": 0, "openai:mystery": 1}
    ledger.close()


def test_budget_is_a_hard_stop_with_a_clear_error(evorag_home) -> None:
    replies = ["a b c d e f g h i j"] * 5
    with Evorag(home=evorag_home, model_client=ReplayChatCompletionClient(replies), model_name="openai:gpt-test",
                model_prices=PRICES, daily_budget_usd=0.02) as rag:
        client = rag.parts.model_client("answer")
        with rag._context.acting(ALICE, "ask"):
            ask(client, "one two three four five")  # 5 prompt + 10 completion tokens = $0.025: over the budget
            with pytest.raises(BudgetExceededError, match=r"daily model budget of \$0.02 is spent") as caught:
                ask(client, "again")
        assert "EVORAG_DAILY_BUDGET_USD" in caught.value.hint
        report = rag.costs()
        assert report.calls == 1 and report.remaining_usd == 0.0  # the refused call was never made
        assert client.inner._current_index == 1  # the replay script moved once
    # A model that runs here is never stopped by the budget.
    with Evorag(home=evorag_home, model_client=ReplayChatCompletionClient(["ok"]), model_name="local:smollm2",
                model_prices=PRICES, daily_budget_usd=0.02) as rag:
        ask(rag.parts.model_client("answer"), "free")
        assert rag.costs().calls == 2


def test_a_budget_stop_makes_answers_extractive(demo_home) -> None:
    client = ReplayChatCompletionClient(["Crawling follows links. [1]"] * 3)
    with Evorag(home=demo_home, model_client=client, model_name="openai:budget-probe", model_prices={
            "openai:budget-probe": {"input": 1000.0, "output": 1000.0}}) as rag:
        rag.settings.daily_budget_usd = rag.costs().total_usd  # already spent: no priced call goes out
        rag.parts._parts.pop("costs").close()  # reopen the ledger with the budget
        answer = rag.ask("How does the crawler follow links?", principal=ALICE)
        assert answer.fallback and "budget" in (answer.note or "")
        assert client._current_index == 0


def test_cli_costs_json(evorag_home, capsys) -> None:
    ledger = CostLedger(evorag_home / "costs.sqlite3", prices=PRICES)
    ledger.record(model="openai:gpt-test", prompt_tokens=100, completion_tokens=50, principal="carol",
                  operation="ask")
    ledger.close()
    assert main(["costs", "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["calls"] == 1 and data["by_principal"][0]["key"] == "carol"
    assert data["total_usd"] == pytest.approx(0.2)
    assert main(["costs"]) == 0
    assert "1 model calls" in capsys.readouterr().out
    assert main(["costs", "--day", "tomorrow"]) == 2


def test_an_agent_step_is_attributed_to_the_agent(evorag_home) -> None:
    from evorag.agents._base import StepAgent
    from evorag.agents._state import EvolutionState

    with Evorag(home=evorag_home, model_client=ReplayChatCompletionClient(["def tool(): ..."]),
                model_name="openai:gpt-test", model_prices=PRICES) as rag:
        state = EvolutionState(request="count words", run_id="r1", workdir=evorag_home, pipeline=None,
                               approver=None)
        agent = StepAgent("tool_generator", "writes the tool", state=state,
                          model_client=rag.parts.model_client("agents"))
        with rag._context.acting(BOB, "evolve"):
            assert asyncio.run(agent.ask_model("write it")) == "def tool(): ..."
        report = rag.costs()
        assert [(r.key, r.calls) for r in report.by_agent] == [("tool_generator", 1)]
        assert [(r.key, r.calls) for r in report.by_operation] == [("evolve", 1)]
        assert [r.key for r in report.by_principal] == ["bob"]
