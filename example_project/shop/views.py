"""The shop's views. Only ``checkout`` mentions Kameleoon: page views are the middleware's job
(the beacon's on product pages, which are cached), and the templates fill in titles and the
thank-you conversion with the tags.
"""

from __future__ import annotations

from decimal import Decimal
from urllib.parse import urlencode

from django import forms
from django.conf import settings
from django.http import Http404, HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.views.decorators.cache import cache_page

import django_kameleoon
from shop.catalog import PRODUCTS, Product


class CheckoutForm(forms.Form):
    quantity = forms.IntegerField(min_value=1, max_value=10, initial=1)


def home(request: HttpRequest) -> HttpResponse:
    return render(request, "shop/home.html", {"products": PRODUCTS.values()})


#: How long a product page is served from Django's cache.
PRODUCT_CACHE_SECONDS = 60


@cache_page(PRODUCT_CACHE_SECONDS)
def product(request: HttpRequest, slug: str) -> HttpResponse:
    """The same page for everyone, so cached: nothing on it is the visitor's (no visitor
    code in its footer), and ``{% kameleoon_beacon %}`` counts each view of it, cached or not.
    """
    item = _product(slug)
    canonical = request.build_absolute_uri(reverse("product", args=[slug]))
    return render(request, "shop/product.html", {"product": item, "canonical": canonical})


def checkout(request: HttpRequest, slug: str) -> HttpResponse:
    """On a valid POST, record the purchase with its revenue, then show the thank-you page.

    The conversion is tracked here, where the order is known to be real; the redirect's
    response is not a page view, but conversions are sent whatever the response.
    """
    item = _product(slug)
    form = CheckoutForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        quantity = form.cleaned_data["quantity"]
        django_kameleoon.track_conversion(
            request, settings.SHOP_GOALS["purchase"], revenue=item.price * quantity
        )
        query = urlencode({"product": slug, "quantity": quantity})
        return redirect(f"{reverse('thanks')}?{query}")
    return render(request, "shop/checkout.html", {"product": item, "form": form})


def thanks(request: HttpRequest) -> HttpResponse:
    """The thank-you page; its template records the "saw the thank-you page" goal."""
    item = PRODUCTS.get(request.GET.get("product", ""))
    quantity = _int(request.GET.get("quantity"), default=1)
    total = item.price * quantity if item else Decimal(0)
    context = {"product": item, "quantity": quantity, "total": total}
    return render(request, "shop/thanks.html", context)


def api_products(request: HttpRequest) -> JsonResponse:
    """JSON for scripts: a response like this is never a page view, so it sends no PAGE."""
    data = [
        {
            "slug": p.slug,
            "name": p.name,
            "price": str(p.price),
            "url": reverse("product", args=[p.slug]),
        }
        for p in PRODUCTS.values()
    ]
    return JsonResponse({"products": data})


def _product(slug: str) -> Product:
    try:
        return PRODUCTS[slug]
    except KeyError:
        raise Http404(f"no product {slug!r}") from None


def _int(text: str | None, *, default: int) -> int:
    try:
        return max(1, min(int(text or default), 10))
    except ValueError:
        return default
