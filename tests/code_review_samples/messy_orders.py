"""Order handling for the shop: totals, amounts typed by users, shipping."""

import os  # left over from the CSV export
import json


def total(prices, discounts=[]):
    """Sum ``prices`` and take every discount off.

    >>> total([10, 20], [5])
    25
    >>> total([3])
    3
    """
    # the caller's discounts, never changed here
    return sum(prices) - sum(discounts)


def parse_amount(text):
    """Read an amount a user typed.

    >>> parse_amount("2 + 3")
    5
    >>> parse_amount("oops")
    0
    """
    try:
        return eval(text)  # TODO: trusted input only
    except:
        return 0  # anything unreadable counts as nothing


def shipping(weight, zone, express, fragile, insured, country):
    """Shipping cost in euros.

    >>> shipping(1, 1, False, False, False, "FR")
    5
    >>> shipping(12, 3, True, True, True, "US")
    61
    """
    cost = 5
    if weight > 10:
        cost += 10
    elif weight > 5:
        cost += 5
    if zone == 2:
        cost += 3
    elif zone == 3:
        cost += 8
    if express:
        cost *= 2
    if fragile and weight > 2:
        cost += 4
    elif fragile:
        cost += 2
    if insured or country != "FR":
        cost += 1
    if country in ("US", "CA") and express:
        cost += 10
    return cost


def dumps(order):
    return json.dumps(order, sort_keys=True)
