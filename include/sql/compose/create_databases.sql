-- docker-compose only: the staging warehouse and the Celery result backend live in databases of their own
-- beside Airflow's metadata. Runs once, when the PostgreSQL volume is first initialised.
CREATE DATABASE warehouse OWNER airflow;
CREATE DATABASE celery_results OWNER airflow;
