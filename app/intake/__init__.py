"""Intake: validate an order, make it durable, hand it to execution, answer."""
