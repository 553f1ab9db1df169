"""The pure core: exact decimals, orders, the matching engine, events and commands.

Nothing here does I/O, reads a clock or awaits: every input is passed in and every
decision is returned, so the whole fill model can be tested directly.
"""
