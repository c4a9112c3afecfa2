"""The sync rules (docs/sync-rules.md), one module per kind, each a part of the planner: they read the staged
firm and the sync state through `RuleBook` and record operations and statuses through it.
"""
