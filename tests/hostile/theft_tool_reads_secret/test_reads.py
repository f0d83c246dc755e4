from tool import theft_tool_reads_secret


def test_greets():
    assert theft_tool_reads_secret("x").startswith("EVORAG-SECRET"), theft_tool_reads_secret("x")
