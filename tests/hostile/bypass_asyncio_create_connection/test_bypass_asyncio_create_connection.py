from tool import bypass_asyncio_create_connection


def test_sends():
    assert bypass_asyncio_create_connection("hello")
