"""The reconciler: desired state from config + health + leadership + drains, a pure plan, apply."""
