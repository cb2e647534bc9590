"""Stripe's test cards: magic payment method ids, tokens and card numbers the sandbox knows."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class CardProfile:
    """A test card and how it behaves when attached or charged."""

    brand: str
    last4: str
    funding: str = "credit"
    country: str = "US"
    decline_on_attach: bool = False
    decline_on_charge: bool = False
    #: ``"always"``: every charge needs 3-D Secure; ``"once"``: only until it was authenticated once.
    authentication: str = "none"
    #: Every successful charge on it is disputed right away (``charge.dispute.created``).
    disputes: bool = False


VISA = CardProfile("visa", "4242")
VISA_DEBIT = CardProfile("visa", "5556", funding="debit")
MASTERCARD = CardProfile("mastercard", "4444")
AMEX = CardProfile("amex", "8431")
DECLINED = CardProfile("visa", "0002", decline_on_attach=True, decline_on_charge=True)
CHARGE_FAILS = CardProfile("visa", "0341", decline_on_charge=True)
AUTH_ALWAYS = CardProfile("visa", "3184", authentication="always")
AUTH_ONCE = CardProfile("visa", "3155", authentication="once")
THREE_D_SECURE_2 = CardProfile("visa", "3220", authentication="always")
DISPUTED = CardProfile("visa", "0259", disputes=True)

#: Magic payment method ids, usable wherever Stripe accepts them in test mode.
MAGIC_PAYMENT_METHODS: dict[str, CardProfile] = {
    "pm_card_visa": VISA,
    "pm_card_visa_debit": VISA_DEBIT,
    "pm_card_mastercard": MASTERCARD,
    "pm_card_amex": AMEX,
    "pm_card_chargeDeclined": DECLINED,
    "pm_card_visa_chargeDeclined": DECLINED,
    "pm_card_chargeCustomerFail": CHARGE_FAILS,
    "pm_card_authenticationRequired": AUTH_ALWAYS,
    "pm_card_authenticationRequiredOnSetup": AUTH_ONCE,
    "pm_card_threeDSecure2Required": THREE_D_SECURE_2,
    "pm_card_createDispute": DISPUTED,
}

#: Test tokens for ``card[token]``.
TOKENS: dict[str, CardProfile] = {
    "tok_visa": VISA,
    "tok_visa_debit": VISA_DEBIT,
    "tok_mastercard": MASTERCARD,
    "tok_amex": AMEX,
    "tok_chargeDeclined": DECLINED,
    "tok_visa_chargeDeclined": DECLINED,
    "tok_chargeCustomerFail": CHARGE_FAILS,
    "tok_threeDSecure2Required": THREE_D_SECURE_2,
    "tok_createDispute": DISPUTED,
}

#: Test card numbers for ``card[number]``.
NUMBERS: dict[str, CardProfile] = {
    "4242424242424242": VISA,
    "4000056655665556": VISA_DEBIT,
    "5555555555554444": MASTERCARD,
    "371449635398431": AMEX,
    "378282246310005": CardProfile("amex", "0005"),
    "4000000000000002": DECLINED,
    "4000000000000341": CHARGE_FAILS,
    "4000002760003184": AUTH_ALWAYS,
    "4000002500003155": AUTH_ONCE,
    "4000000000003220": THREE_D_SECURE_2,
    "4000000000000259": DISPUTED,
}
