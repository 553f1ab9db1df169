-- wrk script: POST the same limit order on every request.
wrk.method = "POST"
wrk.body = '{"symbol": "BENCHUSDT", "side": "sell", "order_size": "1", "price": "1000", "timeout_s": 600}'
wrk.headers["Content-Type"] = "application/json"
