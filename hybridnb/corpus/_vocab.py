"""Word lists of the bundled corpus: 14 CTO-priority categories, shared words, noise.

Each category has its own vocabulary (most frequent first: sampling is Zipf-like over
the list). ``SHARED`` words appear in every category (platform, cost, scale, policy...)
so single keywords are ambiguous.
"""

from __future__ import annotations

# id: (display name, default primary share, drift per year, vocabulary)
CATEGORIES: dict[str, tuple[str, float, float, str]] = {
    "security_risk": ("Risk & security", 0.17, 0.0,
        "security breach ransomware threat attackers vulnerability phishing encryption zero trust "
        "incident exposure exploit patching identity authentication firewall malware hackers "
        "cyber attack surface insurance resilience audit secrets credentials detection soc "
        "supply chain risk register exposure third party penetration testing"),
    "complexity": ("Complexity & technical debt", 0.14, 0.0,
        "complexity legacy technical debt monolith sprawl spaghetti dependencies brittle "
        "rewrite refactoring simplify tangled mainframe coupling microservices too many tools "
        "duplication fragile integration knots decommission rationalise portfolio old code "
        "maintenance burden layers workarounds bespoke"),
    "cost": ("Cost & FinOps", 0.09, 0.0,
        "spend invoices finops savings bill pricing licences overspend chargeback reserved "
        "instances discount procurement expensive cheaper margins forecast unit economics "
        "tagging waste rightsizing renewal headcount opex capex"),
    "ai_readiness": ("AI readiness", 0.08, 0.35,
        "ai models llm generative copilot agents machine learning training inference prompts "
        "chatbot gpu hallucinations embeddings fine tuning automation assistants pilots "
        "use cases foundation vector retrieval evaluation"),
    "talent": ("Talent & skills", 0.08, 0.0,
        "hiring talent skills upskilling retention engineers recruit shortage graduates "
        "training culture burnout mentoring career salaries attrition bootcamp apprentices "
        "people teams onboarding morale"),
    "data_governance": ("Data governance & quality", 0.07, 0.05,
        "data quality lineage catalogue ownership master records governance stewardship "
        "duplicates accuracy metadata lakehouse warehouse pipelines schema definitions "
        "single source truth reporting analytics"),
    "cloud_migration": ("Cloud migration", 0.06, -0.25,
        "migration cloud lift shift datacentre hyperscaler workloads move aws azure hybrid "
        "landing zone replatform exit on premises hosting region migrate wave"),
    "resilience": ("Reliability & resilience", 0.06, 0.0,
        "outage downtime uptime failover recovery backup incident reliability availability "
        "disaster sre pager latency degradation redundancy continuity slo observability "
        "monitoring alerts"),
    "vendor_lockin": ("Vendor management & lock-in", 0.05, 0.0,
        "vendor lock contract negotiation suppliers exit portability proprietary leverage "
        "partner open source dependency renewal terms consolidation switching multi"),
    "compliance": ("Regulation & compliance", 0.05, 0.0,
        "regulation regulators gdpr compliance fines auditors privacy sovereignty act "
        "reporting obligations legal consent retention rules dora nis2 certification"),
    "devex": ("Developer productivity", 0.05, 0.0,
        "developers productivity tooling ci pipelines deploy velocity friction inner loop "
        "platform engineering golden paths portal build times self service flow"),
    "sustainability": ("Sustainability", 0.03, 0.1,
        "carbon emissions sustainability energy green footprint power efficiency net zero "
        "climate hardware lifecycle recycling esg"),
    "integration": ("Integration & APIs", 0.04, 0.0,
        "api apis integration interoperability middleware events messaging connectors "
        "partners ecosystem interfaces contracts gateway standards sync"),
    "innovation": ("Innovation & speed to market", 0.03, 0.0,
        "innovation experiments speed market launch prototype product startup disrupt "
        "ideas agility competitors faster time hackathon roadmap bets"),
}

# words every category uses (ambiguous on their own)
SHARED = ("platform cost scale policy strategy data cloud budget risk process value business "
          "customers infrastructure change investment architecture board roadmap priority").split()

FILLER = ("so um uh you know I think we the a to and of in that is it's really our about what "
          "right like basically kind actually there this they have need going be more how with "
          "for on when do can just very well yeah lot").split()

NOISE = {
    "logistics": "can everyone hear me slides next session break coffee lunch room agenda chat "
                 "link recording camera audio questions minutes welcome back sponsor badge wifi "
                 "stream mute microphone screen share please seats start five",
    "banter": "thanks great question laughter applause weather football morning everyone "
              "pleasure wonderful hello cheers happy friday traffic hotel flight dinner joke "
              "funny story kids holiday",
}

ROLES = ("presenter", "delegate", "host")
ROLE_SHARES = (0.45, 0.40, 0.15)
ROLE_NOISE = (0.12, 0.15, 0.60)  # chance a segment is noise, by role
# role tilts (multiplicative on primary shares): vendors pitch AI/innovation, CTOs worry
ROLE_TILT = {
    "presenter": {"ai_readiness": 1.5, "innovation": 1.6, "integration": 1.3, "devex": 1.2},
    "delegate": {"security_risk": 1.15, "complexity": 1.15, "talent": 1.2, "cost": 1.1},
    "host": {},
}

EVENTS = ("CTO Summit", "Cloud Leaders Forum", "DataOps World", "SecureExec", "AI Frontier Days",
          "Platform Engineering Live")
SESSIONS = ("keynote", "panel", "fireside chat", "roundtable", "workshop", "Q&A")
VENDORS = ("Northwind Cloud", "Contoso Data", "Fabrikam AI", "Tailspin Security", "Litware",
           "Adatum Systems", "Proseware", "Woodgrove Ops", "Lucerne Labs", "Trey Research",
           "none")
YEARS = (2021, 2022, 2023, 2024, 2025)
