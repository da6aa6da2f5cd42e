"""Each test starts from what the migrations left: three priorities, no todos, ids from 1."""


async def test_first_todo_gets_id_1(client):
    response = await client.post("/todos", params={"title": "write docs", "priority": "high"})
    assert response.json() == {"id": 1, "title": "write docs", "priority": "high"}


async def test_first_todo_gets_id_1_again(client):
    assert (await client.get("/todos")).json() == []
    response = await client.post("/todos", params={"title": "ship", "priority": "low"})
    assert response.json()["id"] == 1


async def test_deleting_a_seeded_row(client):
    await client.delete("/priorities/normal")
    assert (await client.get("/priorities")).json() == ["low", "high"]


async def test_seeded_rows_are_back(client):
    assert (await client.get("/priorities")).json() == ["low", "normal", "high"]
