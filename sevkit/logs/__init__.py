"""Parsers for captured text people paste in tickets: host and guest dmesg, cpuinfo, cpuid.

    from sevkit.logs.dmesg import parse_host_dmesg, parse_guest_dmesg
    from sevkit.logs.cpuinfo import parse_cpuinfo
    from sevkit.logs.cpuid import parse_cpuid_text
    from sevkit.logs.analyze import detect_kind, analyze_file
"""
