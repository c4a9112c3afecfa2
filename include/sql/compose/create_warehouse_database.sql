-- docker-compose only: the staging warehouse lives in its own database beside Airflow's metadata.
-- Runs once, when the PostgreSQL volume is first initialised.
CREATE DATABASE warehouse OWNER airflow;
