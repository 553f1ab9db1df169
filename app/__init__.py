"""Trade executor: simulated limit orders filled against the Binance market-data stream."""
