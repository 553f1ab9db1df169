"""The Binance market-data client (the MarketFeed port)."""
