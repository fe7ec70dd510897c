"""Metering: what a call cost (pricing) and token estimates where no provider counts."""
