"""Reference Celery worker of the email service.

The Celery app in :mod:`emailworker.app` is configured only from the
``CELERY_*`` environment variables that the Pulumi program sets on the
email-service container.
"""
