"""Key vault and tamper-evident audit log. Never imports ifadit or torch: auditors install it alone."""
