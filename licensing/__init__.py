"""Lysmore licensing: Stripe payments and webhooks as jobs and workflows on a private instance."""

# Entry points: licensing.app.LicensingApp (make_engine for `lysmore worker`), licensing.serve.serve
# (`lysmore licensing serve`), licensing.keys.verify_license. Nothing is imported here, so that
# licensing.sandbox stays light.
