"""Edge node: turns sensor readings into events and publishes them over MQTT."""
