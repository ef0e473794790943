"""The storefront tracker: its size, and how many events per second one page can send without loss.

Size: ``tracker.js`` as served, raw and gzip-compressed (level 9, what a CDN or proxy sends).

Rate: a real ``cartlift serve`` on a temporary DuckDB store, a page in headless Chromium served
from another origin (the tracker loaded from the service), firing ``addToCart`` at a steady rate
R for ``--seconds`` seconds, then waiting until the tracker's queue is empty. After the service
stops, the store is counted: an R is lossless when every event fired is stored, once. Rates
double from ``--start`` until the first loss. A burst is held in the page's queue (at most 5,000
events) while one batch at a time is in flight, so the sustained delivery rate (events fired over
firing plus draining time) is printed too. The reference, on the same server and page: a bare
loop that posts the same 20-event batches with ``fetch``, one at a time, as fast as it can (no
queue, no persistence): the tracker's lossless rate is printed as a ratio of its events/s.

Usage: ``python benchmarks/tracker.py [--seconds 5] [--start 100] [--max 6400]``.
"""

from __future__ import annotations

import argparse
import gzip
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx

from cartlift.integrations import tracker_script
from cartlift.serve import create_key_in_store
from cartlift.store import EventStore

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
FLAGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-dev-shm-usage",
]

FIRE = """([rate, seconds, tag]) => new Promise((done) => {
  let n = 0; const total = rate * seconds; const t0 = performance.now();
  const tick = setInterval(() => {
    const due = Math.min(total, Math.floor((performance.now() - t0) / 1000 * rate));
    for (; n < due; n++) cartlift.addToCart({product_id: tag + '_' + n, quantity: 1, price: 1});
    if (n >= total) { clearInterval(tick); done(total); }
  }, 5);
})"""

BARE = """async ([url, batches, tag]) => {
  const t0 = performance.now();
  for (let b = 0; b < batches; b++) {
    const batch = [];
    for (let i = 0; i < 20; i++) batch.push({kind: 'event', id: tag + '_' + b + '_' + i, type: 'cart_add',
      ts: new Date().toISOString(), product_id: tag + '_' + b + '_' + i, anonymous_id: 'a_bare', session_id: 's_bare'});
    const r = await fetch(url, {method: 'POST', body: JSON.stringify({batch}), headers: {'Content-Type': 'text/plain'}});
    if (!r.ok) throw new Error('status ' + r.status);
  }
  return (performance.now() - t0) / 1000;
}"""


def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def size() -> tuple[int, int]:
    raw = tracker_script()
    return len(raw), len(gzip.compress(raw, compresslevel=9))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--start", type=int, default=100)
    parser.add_argument("--max", type=int, default=6_400)
    args = parser.parse_args()
    raw, packed = size()
    print(f"tracker.js: {raw:,} bytes raw, {packed:,} bytes gzip -9")

    from playwright.sync_api import sync_playwright

    folder = Path(tempfile.mkdtemp(prefix="cartlift-tracker-bench-"))
    db = str(folder / "store.duckdb")
    api_port, shop_port = free_port(), free_port()
    api, shop = f"http://127.0.0.1:{api_port}", f"http://127.0.0.1:{shop_port}"
    key = create_key_in_store(db, scope="track", origins=[shop], rate_limit=100_000)[0]
    page_html = (
        f'<!doctype html><html><body><script src="{api}/v1/tracker.js" data-key="{key}"></script></body></html>'
    ).encode()

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            self.send_response(200)
            self.send_header("Content-Type", "text/html")
            self.end_headers()
            self.wfile.write(page_html)

        def log_message(self, *a: Any) -> None:
            pass

    httpd = ThreadingHTTPServer(("127.0.0.1", shop_port), Handler)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    cli = Path(sys.executable).with_name("cartlift")
    with (folder / "server.log").open("wb") as log:
        server = subprocess.Popen(
            [str(cli), "serve", "--db", db, "--port", str(api_port), "--log-level", "warning"],
            stdout=log,
            stderr=log,
        )
    fired: dict[str, int] = {}
    delivered: dict[str, float] = {}
    bare_rate = 0.0
    try:
        for _ in range(300):
            try:
                if httpx.get(api + "/healthz", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                time.sleep(0.2)
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=CHROMIUM, args=FLAGS, headless=True)
            page = browser.new_page()
            page.goto(shop)
            page.wait_for_function("window.cartlift && window.cartlift.version")
            batches = 250
            seconds = page.evaluate(BARE, [f"{api}/v1/track?key={key}", batches, "bare"])
            bare_rate = batches * 20 / seconds
            print(f"reference (bare fetch loop, 20-event batches): {bare_rate:,.0f} events/s")
            rate = args.start
            while rate <= args.max:
                tag = f"r{rate}"
                page.reload()
                page.wait_for_function("window.cartlift && window.cartlift.version")
                fired[tag] = page.evaluate(FIRE, [rate, args.seconds, tag])
                started = time.monotonic()
                try:
                    page.wait_for_function("window.cartlift.pending() === 0", timeout=60_000)
                except Exception:
                    print(f"  {rate:>6,} events/s: the queue did not drain within 60 s", flush=True)
                    break
                drained = time.monotonic() - started
                delivered[tag] = fired[tag] / (args.seconds + drained)
                print(
                    f"  {rate:>6,} events/s fired; queue drained {drained:.1f} s later"
                    f" (delivered at {delivered[tag]:,.0f} events/s)",
                    flush=True,
                )
                rate *= 2
            browser.close()
    finally:
        server.terminate()
        try:
            server.wait(120)  # the writer commits what is queued before it stops
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait(30)
        httpd.shutdown()
    with EventStore(db, read_only=True) as store:
        stored = dict(
            store.con.execute(
                "SELECT split_part(product_id, '_', 1), count(DISTINCT event_id) FROM events GROUP BY 1"
            ).fetchall()
        )
    best = 0
    for tag, n in fired.items():
        got = int(stored.get(tag, 0))
        lossless = got == n
        print(
            f"  {tag[1:]:>6} events/s for {args.seconds:g} s: fired {n:,}, stored {got:,}"
            + ("" if lossless else "  LOSS")
        )
        if lossless:
            best = max(best, int(tag[1:]))
        else:
            break
    print(
        f"lossless rate of one page: {best:,} events/s ({best / bare_rate:.2f}x the bare fetch loop's {bare_rate:,.0f})"
    )
    if delivered:
        print(
            f"sustained delivery of one page (fired / (firing + draining time)): {max(delivered.values()):,.0f} events/s"
        )
    shutil.rmtree(folder, ignore_errors=True)


if __name__ == "__main__":
    main()
