from __future__ import annotations

from typing import Annotated, Any

import sqlalchemy as sa
from fastapi import Depends, FastAPI, HTTPException
from sqlalchemy.ext.asyncio import AsyncSession

from todo import db
from todo.models import Priority, Todo

app = FastAPI()
Session = Annotated[AsyncSession, Depends(db.session)]


@app.post("/todos")
async def add_todo(title: str, priority: str, session: Session) -> dict[str, Any]:
    found = await session.scalar(sa.select(Priority).where(Priority.name == priority))
    if found is None:
        raise HTTPException(404, f"no priority {priority!r}")
    todo = Todo(title=title, priority_id=found.id)
    session.add(todo)
    await session.commit()
    return {"id": todo.id, "title": todo.title, "priority": priority}


@app.get("/todos")
async def todos(session: Session) -> list[str]:
    return list(await session.scalars(sa.select(Todo.title).order_by(Todo.id)))


@app.get("/priorities")
async def priorities(session: Session) -> list[str]:
    return list(await session.scalars(sa.select(Priority.name).order_by(Priority.id)))


@app.delete("/priorities/{name}")
async def delete_priority(name: str, session: Session) -> None:
    await session.execute(sa.delete(Priority).where(Priority.name == name))
    await session.commit()
