"""sevkit's one vocabulary: features, guest kinds, profiles, and the feature chain.

Values are the strings used on the command line, in JSON and in test ids, so an enum member
compares equal to its string (``GuestKind.SNP == "sev-snp"``). This module imports nothing heavy:
the host probe, the CLI and the fixtures all use it.

The chain: SEV-SNP needs SEV-ES, SEV-ES needs SEV (AMD APM vol. 2 §15.34-15.36; a guest of each
kind also needs every feature below it enabled on the host).
"""

from __future__ import annotations

from enum import StrEnum


class Feature(StrEnum):
    """A host memory-encryption feature, as `sevkit probe` reports it."""

    SME = "SME"
    SEV = "SEV"
    SEV_ES = "SEV-ES"
    SEV_SNP = "SEV-SNP"

    @property
    def flag(self) -> str:
        """Linux's lower-case token for it: the /proc/cpuinfo flag (sme, sev, sev_es, sev_snp;
        torvalds/linux arch/x86/include/asm/cpufeatures.h) and, for the SEV features, the kvm_amd
        module parameter (sev, sev_es, sev_snp; arch/x86/kvm/svm/sev.c)."""
        return self.value.lower().replace("-", "_")


class GuestKind(StrEnum):
    """A kind of guest the suite boots (also the pytest ids of the ``guest`` fixture)."""

    PLAIN = "plain"
    SEV = "sev"
    SEV_ES = "sev-es"
    SEV_SNP = "sev-snp"

    @property
    def feature(self) -> Feature | None:
        """The host feature this kind runs on (None for a plain guest)."""
        return None if self is GuestKind.PLAIN else Feature(self.value.upper())

    @property
    def confidential(self) -> bool:
        return self is not GuestKind.PLAIN


class Profile(StrEnum):
    """What a lab demands of a host (``--sev-expect``)."""

    NONE = "none"
    SEV = "sev"
    SEV_ES = "sev-es"
    SEV_SNP = "sev-snp"

    @property
    def features(self) -> tuple[Feature, ...]:
        """The features this profile demands: each one implies the ones below it."""
        return FEATURE_CHAIN[: FEATURE_CHAIN.index(Feature(self.value.upper())) + 1] if self is not Profile.NONE else ()


# The confidential-guest features in the order each builds on the last.
FEATURE_CHAIN: tuple[Feature, ...] = (Feature.SEV, Feature.SEV_ES, Feature.SEV_SNP)
FEATURES: tuple[Feature, ...] = tuple(Feature)
GUEST_KINDS: tuple[GuestKind, ...] = tuple(GuestKind)
PROFILES: tuple[Profile, ...] = tuple(Profile)
# kvm_amd module parameter (sev, sev_es, sev_snp) -> the feature it enables.
KVM_PARAM_FEATURE: dict[str, Feature] = {f.flag: f for f in FEATURE_CHAIN}


def prerequisites(feature: Feature) -> tuple[Feature, ...]:
    """The features ``feature`` builds on (SEV-SNP -> (SEV, SEV-ES)); SME has none."""
    if feature not in FEATURE_CHAIN:
        return ()
    return FEATURE_CHAIN[: FEATURE_CHAIN.index(feature)]


def chain(feature: Feature) -> tuple[Feature, ...]:
    """``feature`` and the features it builds on (SEV-SNP -> (SEV, SEV-ES, SEV-SNP); SME -> (SME,))."""
    return (*prerequisites(feature), feature)


def dependents(feature: Feature) -> tuple[Feature, ...]:
    """``feature`` and the features that build on it (SEV-ES -> (SEV-ES, SEV-SNP); SME -> (SME,))."""
    if feature not in FEATURE_CHAIN:
        return (feature,)
    return FEATURE_CHAIN[FEATURE_CHAIN.index(feature):]
