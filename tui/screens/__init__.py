"""The dashboard's screens: one module per view, plus the modals every view shares."""
