"""The shop's products through GraphQL: ``POST /{p}/graphql`` (``{p}`` is ``shop`` or an
authenticated prefix, as in :mod:`fetchpipe.sim.shop`), a Relay connection to page through.

Served by graphql-core, the reference implementation (a port of GraphQL.js), so that a
pipeline meets what a real GraphQL server does: parsing and validation errors, variables,
errors beside partial data. It is an optional dependency (``pip install 'fetchpipe[sim]'``),
imported on the first GraphQL request: the rest of the fleet runs without it, and without it
this route answers 501 saying what to install. The schema::

    type Query {
      products(first: Int = 25, after: String, updatedSince: String): ProductConnection!
      product(id: Int!): Product
    }
    type ProductConnection { edges: [ProductEdge!]!  nodes: [Product!]!  pageInfo: PageInfo!
                             totalCount: Int! }
    type ProductEdge { cursor: String!  node: Product! }
    type PageInfo { startCursor: String  endCursor: String  hasNextPage: Boolean!
                    hasPreviousPage: Boolean! }
    type Product { id: Int!  name: String!  price: Float!  updatedAt: String!  tags: [String!]!
                   inStock: Boolean!  supplier: String  reviews: [Review!]! }
    type Review { id: Int!  stars: Int!  title: String! }

``first`` is 1 to 100; ``supplier`` is restricted: always null, with an error in ``errors``
(as a field the token may not see). The body is ``{"query": ..., "variables": {...},
"operationName": ...}``; the answer is ``{"data": ..., "errors": [...]}`` with status 200, or
400 when the body is not such a request.
"""

from __future__ import annotations

import base64
import binascii
import functools
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from aiohttp import web

from fetchpipe.sim.params import json_response
from fetchpipe.sim.shop import SHOP, ShopState, add_shop_route

if TYPE_CHECKING:
    from graphql import GraphQLSchema

__all__ = ["GRAPHQL_MISSING", "add_shop_graphql_routes"]

GRAPHQL_MISSING = (
    "the GraphQL endpoint needs graphql-core, which is not installed. "
    "HINT: pip install 'fetchpipe[sim]'"
)
_MAX_FIRST = 100

_SDL = """
type Query {
  "Products in id order, a page of `first` after the cursor `after`."
  products(first: Int = 25, after: String, updatedSince: String): ProductConnection!
  product(id: Int!): Product
}
type ProductConnection {
  edges: [ProductEdge!]!
  "The edges' nodes, without their cursors."
  nodes: [Product!]!
  pageInfo: PageInfo!
  totalCount: Int!
}
type ProductEdge { cursor: String! node: Product! }
type PageInfo {
  startCursor: String
  endCursor: String
  hasNextPage: Boolean!
  hasPreviousPage: Boolean!
}
type Product {
  id: Int!
  name: String!
  price: Float!
  updatedAt: String!
  tags: [String!]!
  inStock: Boolean!
  "Restricted: null, with an error."
  supplier: String
  reviews: [Review!]!
}
type Review { id: Int! stars: Int! title: String! }
"""


@functools.cache
def _schema() -> GraphQLSchema:
    from graphql import build_schema  # lazy: an optional dependency, for this route only

    return build_schema(_SDL)


def _cursor(product_id: int) -> str:
    return base64.b64encode(f"product:{product_id}".encode()).decode()


def _after(cursor: str | None) -> int:
    from graphql import GraphQLError  # lazy: an optional dependency, for this route only

    if cursor is None:
        return 0
    try:
        kind, _, value = base64.b64decode(cursor, validate=True).decode().partition(":")
        if kind != "product":
            raise ValueError(kind)
        return int(value)
    except (ValueError, binascii.Error, UnicodeDecodeError):
        raise GraphQLError(f"invalid cursor {cursor[:40]!r}") from None


def _restricted(info: Any) -> None:
    from graphql import GraphQLError  # lazy: an optional dependency, for this route only

    raise GraphQLError("supplier is restricted: the token may not read suppliers")


class _Root:
    """The query root of one request: resolvers over the shop's products."""

    def __init__(self, state: ShopState) -> None:
        self.state = state

    def _node(self, product: dict[str, Any]) -> dict[str, Any]:
        return {
            "id": product["id"],
            "name": product["name"],
            "price": product["price"],
            "updatedAt": product["updated_at"],
            "tags": product["tags"],
            "inStock": product["in_stock"],
            "supplier": _restricted,
            "reviews": self.state.reviews.get(product["id"], []),
        }

    def products(
        self,
        info: Any,
        first: int = 25,
        after: str | None = None,
        updatedSince: str | None = None,
    ) -> dict[str, Any]:
        from graphql import GraphQLError  # lazy: an optional dependency, for this route only

        if not 1 <= first <= _MAX_FIRST:
            raise GraphQLError(f"first must be between 1 and {_MAX_FIRST}, not {first}")
        since = None
        if updatedSince is not None:
            try:
                since = datetime.fromisoformat(updatedSince)
            except ValueError:
                raise GraphQLError("updatedSince must be an ISO 8601 timestamp") from None
            since = since if since.tzinfo is not None else since.replace(tzinfo=UTC)
        matching = self.state.updated_since(since)
        start = _after(after)
        rest = [p for p in matching if p["id"] > start]
        edges = [{"cursor": _cursor(p["id"]), "node": self._node(p)} for p in rest[:first]]
        return {
            "edges": edges,
            "nodes": [edge["node"] for edge in edges],
            "pageInfo": {
                "startCursor": edges[0]["cursor"] if edges else None,
                "endCursor": edges[-1]["cursor"] if edges else None,
                "hasNextPage": len(rest) > first,
                "hasPreviousPage": start > 0,
            },
            "totalCount": len(matching),
        }

    def product(self, info: Any, id: int) -> dict[str, Any] | None:
        found = next((p for p in self.state.products if p["id"] == id), None)
        return None if found is None else self._node(found)


def _bad_request(message: str) -> web.Response:
    return json_response({"errors": [{"message": message}]}, status=400)


async def graphql_endpoint(request: web.Request) -> web.StreamResponse:
    """``POST /{p}/graphql``: one GraphQL operation over the shop's products."""
    try:
        from graphql import graphql_sync  # lazy: an optional dependency, for this route only
    except ImportError:
        return json_response({"errors": [{"message": GRAPHQL_MISSING}]}, status=501)
    try:
        payload = await request.json()
    except ValueError:
        return _bad_request("the body must be JSON: {query, variables, operationName}")
    if not isinstance(payload, dict) or not isinstance(payload.get("query"), str):
        return _bad_request("the body must be a JSON object with a query string")
    variables = payload.get("variables")
    if variables is not None and not isinstance(variables, dict):
        return _bad_request("variables must be a JSON object")
    root = _Root(request.app[SHOP])
    result = graphql_sync(
        _schema(),
        payload["query"],
        root_value={"products": root.products, "product": root.product},
        variable_values=variables,
        operation_name=payload.get("operationName"),
    )
    return json_response(result.formatted)


def add_shop_graphql_routes(app: web.Application) -> None:
    """Register ``POST /{p}/graphql`` on ``app`` (after the shop's own routes)."""
    add_shop_route(app, "POST", "/graphql", graphql_endpoint)
