"""The staff dashboard page, the review queue and (admins) staff accounts."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, HTTPException, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import HTMLResponse
from pydantic import BaseModel, Field

from store_server.api.access import AdminUser, StaffUser, WebDep
from store_server.api.templating import page
from store_server.domain.accounts import AccountError, Role
from store_server.domain.review import Correction, ReviewError, ReviewStatus
from store_server.service import views

router = APIRouter()


@router.get("/staff", response_class=HTMLResponse, tags=["staff"], include_in_schema=False)
def dashboard(request: Request, user: StaffUser) -> HTMLResponse:
    return page(request, "dashboard.html", user=user)


@router.get("/api/dashboard", tags=["staff"])
async def dashboard_snapshot(web: WebDep, _: StaffUser) -> dict[str, Any]:
    """What the dashboard shows, as one JSON document (the live stream starts with the same)."""
    return await run_in_threadpool(web.feed.snapshot)


@router.get("/api/reviews", tags=["review"])
def reviews(
    request: Request, _: StaffUser, status: ReviewStatus | None = None, limit: int = 100
) -> list[dict[str, Any]]:
    server = request.app.state.server
    with server.uow_factory() as uow:
        return [views.review_view(r) for r in uow.reviews.list(status, min(max(limit, 1), 500))]


@router.get("/api/reviews/{review_id}", tags=["review"])
def review(request: Request, _: StaffUser, review_id: str) -> dict[str, Any]:
    with request.app.state.server.uow_factory() as uow:
        item = uow.reviews.get(review_id)
    if item is None:
        raise HTTPException(404, f"no review item {review_id!r}")
    return views.review_view(item)


Quantity = Annotated[int, Field(ge=0, le=100)]
Sku = Annotated[str, Field(min_length=1, max_length=64)]


class ResolveIn(BaseModel):
    action: Literal["keep", "remove", "assign", "charge"] = Field(
        description="keep the decision, remove what it applied, or assign session/sku/quantity instead; "
        "charge: charge a timed-out visit's cart (once; a decline is a receipt that says so)"
    )
    session_id: str | None = None
    sku: str | None = None
    quantity: int | None = Field(None, ge=-100, le=100, description="+ taken, - put back")
    quantities: dict[Sku, Quantity] | None = Field(
        None,
        max_length=200,
        description="charge only: quantities that replace the cart's per sku before charging "
        "(0 removes the line; products not listed stay as they are)",
    )
    note: str = Field("", max_length=500)


@router.post("/api/reviews/{review_id}/resolve", tags=["review"])
async def resolve(web: WebDep, user: StaffUser, review_id: str, body: ResolveIn) -> dict[str, Any]:
    target = None
    if body.action == "assign":
        if not (body.session_id and body.sku and body.quantity):
            raise HTTPException(422, "assign needs session_id, sku and a non-zero quantity")
        target = Correction(body.session_id, body.sku, body.quantity)
    if body.quantities is not None and body.action != "charge":
        raise HTTPException(422, f"quantities: only with action charge, not {body.action}")
    try:
        item = await run_in_threadpool(
            web.reviews.resolve, review_id, body.action, target, user.email, body.note, body.quantities
        )
    except LookupError as exc:
        raise HTTPException(404, str(exc)) from None
    except ReviewError as exc:
        raise HTTPException(409, str(exc)) from None
    return views.review_view(item)


class StaffIn(BaseModel):
    email: str
    name: str = ""
    password: str = Field(min_length=10, max_length=256)
    role: Literal["staff", "admin"] = "staff"


@router.get("/api/users", tags=["admin"])
def users(web: WebDep, _: AdminUser) -> list[dict[str, Any]]:
    return [
        {"id": u.id, "email": u.email, "name": u.name, "role": u.role.value, "created_at": u.created_at}
        for u in web.people.users.list()
    ]


@router.post("/api/staff-users", tags=["admin"], status_code=201)
def create_staff(web: WebDep, _: AdminUser, body: StaffIn) -> dict[str, Any]:
    try:
        user = web.people.create_staff(body.email, body.name, body.password, Role(body.role))
    except AccountError as exc:
        raise HTTPException(409, str(exc)) from None
    return {"id": user.id, "email": user.email, "role": user.role.value}
