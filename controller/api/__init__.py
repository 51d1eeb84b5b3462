"""The controller's HTTP API (aiohttp): the worker registry now; calls, CDRs and the event feed follow."""
