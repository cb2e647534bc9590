"""Products and prices: the seeded catalog, ``/v1/products`` and ``/v1/prices`` (read-only over the API)."""

from __future__ import annotations

import copy
from typing import Any

from ..errors import invalid_request
from ..params import Params, as_bool, as_list, as_str, check_known
from .core import PAGING, Core, Obj, RequestContext, matching, now


class Catalog:
    """The products and recurring prices subscriptions are made of."""

    def __init__(self, core: Core) -> None:
        self._core = core

    def seed(self) -> None:
        """Create the Lysmore Pro product with its monthly and yearly prices."""
        self.add_product("prod_lysmore_pro", name="Lysmore Pro", description="Lysmore Pro license")
        self.add_price(
            "price_monthly",
            product="prod_lysmore_pro",
            unit_amount=4900,
            interval="month",
            lookup_key="pro_monthly",
            nickname="Pro monthly",
        )
        self.add_price(
            "price_yearly",
            product="prod_lysmore_pro",
            unit_amount=49000,
            interval="year",
            lookup_key="pro_yearly",
            nickname="Pro yearly",
        )

    def add_product(self, product_id: str, *, name: str, description: str | None = None) -> Obj:
        """Create a product directly (no API request, no event)."""
        with self._core.lock:
            created = now()
            return copy.deepcopy(
                self._core.put(
                    "product",
                    {
                        "id": product_id,
                        "object": "product",
                        "active": True,
                        "created": created,
                        "default_price": None,
                        "description": description,
                        "images": [],
                        "livemode": False,
                        "marketing_features": [],
                        "metadata": {},
                        "name": name,
                        "package_dimensions": None,
                        "shippable": None,
                        "statement_descriptor": None,
                        "tax_code": None,
                        "type": "service",
                        "unit_label": None,
                        "updated": created,
                        "url": None,
                    },
                )
            )

    def add_price(
        self,
        price_id: str,
        *,
        product: str,
        unit_amount: int,
        interval: str = "month",
        currency: str = "usd",
        interval_count: int = 1,
        lookup_key: str | None = None,
        nickname: str | None = None,
        active: bool = True,
    ) -> Obj:
        """Create a recurring price directly (no API request, no event)."""
        with self._core.lock:
            prod = self._core.tables["product"].get(product)
            if prod is None:
                raise KeyError(f"no product {product}")
            price = self._core.put(
                "price",
                {
                    "id": price_id,
                    "object": "price",
                    "active": active,
                    "billing_scheme": "per_unit",
                    "created": now(),
                    "currency": currency,
                    "custom_unit_amount": None,
                    "livemode": False,
                    "lookup_key": lookup_key,
                    "metadata": {},
                    "nickname": nickname,
                    "product": product,
                    "recurring": {
                        "interval": interval,
                        "interval_count": interval_count,
                        "meter": None,
                        "trial_period_days": None,
                        "usage_type": "licensed",
                    },
                    "tax_behavior": "unspecified",
                    "tiers_mode": None,
                    "transform_quantity": None,
                    "type": "recurring",
                    "unit_amount": unit_amount,
                    "unit_amount_decimal": str(unit_amount),
                },
            )
            if prod["default_price"] is None:
                prod["default_price"] = price_id
            return copy.deepcopy(price)

    def active_price(self, raw: Any, param: str) -> Obj:
        """The price a parameter names, refused when it does not exist or is inactive."""
        price = self._core.get("price", as_str(raw, param), label="price", param=param)
        if not price["active"]:
            raise invalid_request("The price specified is inactive. This field only accepts active prices.", param=param)
        return price

    def retrieve_product(self, params: Params, ctx: RequestContext, id: str) -> Obj:
        """GET /v1/products/{id}."""
        return self._core.retrieve("product", id, params)

    def list_products(self, params: Params, ctx: RequestContext) -> Obj:
        """GET /v1/products."""
        with self._core.lock:
            check_known(params, ("active", "ids", *PAGING))
            found = matching(list(self._core.tables["product"].values()), params, "active", as_bool)
            if "ids" in params:
                ids = set(as_list(params["ids"], "ids"))
                found = [p for p in found if p["id"] in ids]
            return self._core.paginate(found, params, "/v1/products")

    def retrieve_price(self, params: Params, ctx: RequestContext, id: str) -> Obj:
        """GET /v1/prices/{id}."""
        return self._core.retrieve("price", id, params)

    def list_prices(self, params: Params, ctx: RequestContext) -> Obj:
        """GET /v1/prices."""
        with self._core.lock:
            check_known(params, ("active", "currency", "lookup_keys", "product", "type", *PAGING))
            found = matching(list(self._core.tables["price"].values()), params, "active", as_bool)
            for name in ("currency", "product", "type"):
                found = matching(found, params, name)
            if "lookup_keys" in params:
                keys = set(as_list(params["lookup_keys"], "lookup_keys"))
                found = [p for p in found if p["lookup_key"] in keys]
            return self._core.paginate(found, params, "/v1/prices")
