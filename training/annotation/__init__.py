"""The human-annotated IU X-ray set (issue 16): sampling, agreement and the dev / lock-box split.

Only labels keyed by IU uid live in the repository; the report text (CC BY-NC-ND) is read from ../shared."""
