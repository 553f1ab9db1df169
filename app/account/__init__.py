"""The paper account at the edge: GET /account, the /ws account channel, latest quotes."""
