"""A small, realistic service to practise on: run it, then attach to its pid.

Worker threads pull orders from a queue, an asyncio loop serves "requests",
``Inventory`` keeps state, ``PaymentGateway.charge`` fails now and then, and
``checksum`` is a hot function. Stdlib only, runs on Python 3.8+.
"""

import asyncio
import collections
import itertools
import os
import queue
import random
import sys
import threading
import time

SETTINGS = {"region": "eu-west-1", "max_batch": 32, "retry": {"attempts": 3, "backoff_s": 0.2}}
orders = queue.Queue()
processed = []
recent_orders = collections.deque(maxlen=50)  # keeps live Order objects for vmtool getInstances
order_ids = itertools.count(1)


class Order:
    def __init__(self, order_id, sku, quantity):
        self.order_id = order_id
        self.sku = sku
        self.quantity = quantity
        self.status = "new"


class Inventory:
    capacity = 1000

    def __init__(self):
        self.stock = {"apple": 500, "pear": 300, "plum": 200}
        self.reserved = 0

    def reserve(self, sku, quantity):
        if self.stock.get(sku, 0) < quantity:
            self.stock[sku] = self.stock.get(sku, 0) + 100  # restock
        self.stock[sku] -= quantity
        self.reserved += quantity
        return self.stock[sku]


class PaymentGateway:
    def __init__(self, failure_rate=0.1):
        self.failure_rate = failure_rate
        self.charged = 0

    def charge(self, order, amount):
        time.sleep(random.uniform(0.001, 0.01))
        if random.random() < self.failure_rate:
            raise RuntimeError("card declined for order %d" % order.order_id)
        self.charged += amount
        return {"order": order.order_id, "amount": amount, "ok": True}


def checksum(data):
    total = 0
    for byte in data:
        total = (total * 31 + byte) & 0xFFFFFFFF
    return total


inventory = Inventory()
gateway = PaymentGateway()


def handle(order):
    inventory.reserve(order.sku, order.quantity)
    checksum(("%d:%s" % (order.order_id, order.sku)).encode() * 20)
    try:
        receipt = gateway.charge(order, order.quantity * 3)
        order.status = "paid"
        return receipt
    except RuntimeError:
        order.status = "declined"
        return None
    finally:
        processed.append(order.order_id)
        del processed[:-100]


def worker():
    while True:
        handle(orders.get())


def new_order():
    order = Order(next(order_ids), random.choice(["apple", "pear", "plum"]), random.randint(1, 5))
    recent_orders.append(order)
    orders.put(order)


def producer():
    while True:
        new_order()
        time.sleep(0.02)


async def serve_request(request_id):
    await asyncio.sleep(random.uniform(0.05, 0.2))
    return {"request": request_id, "stock": dict(inventory.stock)}


async def http_like_server():
    request_id = 0
    while True:
        request_id += 1
        await asyncio.gather(serve_request(request_id), serve_request(request_id + 1))
        await asyncio.sleep(0.1)


def exit_with_parent(parent):
    """Started by ``flight_profiler demo`` in its own session: leave when that client is gone."""
    while os.getppid() == parent:
        time.sleep(0.5)
    os._exit(0)


def main():
    if "--exit-with-parent" in sys.argv:
        threading.Thread(target=exit_with_parent, args=(os.getppid(),), name="parent-watch", daemon=True).start()
    for _ in range(5):
        new_order()  # some orders exist from the first instant on
    for index in range(2):
        threading.Thread(target=worker, name="order-worker-%d" % index, daemon=True).start()
    threading.Thread(target=producer, name="order-producer", daemon=True).start()
    print("demo service running, pid %d" % os.getpid(), flush=True)
    try:
        asyncio.run(http_like_server())
    except KeyboardInterrupt:
        sys.exit(0)


if __name__ == "__main__":
    main()
