"""Audit for data teams: published label Bundles -> a flat table (export), two tables -> what changed (diff), and
one self-contained HTML page for a governance meeting (report). docs/AUDIT.md."""
