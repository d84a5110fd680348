"""Who may call and how much: API keys and tenants (`keys`), per-caller limits (`quota`)."""
