"""A balanced, hand-written two-class sentiment set for bench_choices.py and the opt-in vLLM test.

52 clearly positive and 52 clearly negative short reviews (products, food, films,
hotels, services); ``items()`` pairs each review with a label set in one of four
orders/casings, so every class meets every order and casing equally often.
"""

from __future__ import annotations

POSITIVE = [
    "I love this blender, it crushes ice in seconds and is easy to clean.",
    "Best pizza in town, the crust was perfect and the staff were lovely.",
    "The film was wonderful, I laughed and cried and want to see it again.",
    "Our hotel room was spotless and the view of the sea was stunning.",
    "Great headphones: clear sound, comfortable, and the battery lasts for days.",
    "The plumber arrived early, fixed the leak fast and charged a fair price.",
    "Absolutely delighted with these running shoes, my knees finally feel fine.",
    "A brilliant novel, I could not put it down until the last page.",
    "The coffee here is excellent and the baristas are always friendly.",
    "This vacuum is fantastic, it picks up every bit of pet hair.",
    "Superb service from start to finish, I will definitely come back.",
    "The kids adored the museum, it was fun and surprisingly educational.",
    "My new laptop is fast, light and the screen is gorgeous.",
    "Lovely little cafe with delicious cakes and a warm atmosphere.",
    "The tour guide was knowledgeable and funny, a perfect afternoon.",
    "These gardening gloves are sturdy and fit perfectly, highly recommended.",
    "Fast delivery, well packed, and the lamp looks even better than in the photos.",
    "The concert was amazing, the band sounded incredible live.",
    "I am very happy with this phone case, it survived several drops.",
    "The dentist was gentle and kind, the best appointment I have ever had.",
    "What a great app, simple to use and it saves me hours every week.",
    "The pasta was fresh and tasty, easily the best meal of our trip.",
    "Excellent quality jacket, warm, waterproof and it looks smart.",
    "The yoga class was relaxing and the teacher was wonderful.",
    "Our stay at the cabin was peaceful and the hosts were generous.",
    "This board game is a hit, the whole family loves playing it.",
    "Customer support solved my problem in five minutes, very impressed.",
    "The bread from this bakery is heavenly, crusty outside and soft inside.",
    "I adore this perfume, it smells fresh and lasts all day.",
    "The bike shop tuned my bicycle perfectly and it rides like new.",
    "Fantastic documentary, beautifully filmed and deeply moving.",
    "The mattress is so comfortable, I sleep better than I have in years.",
    "Friendly staff, clean rooms and a delicious breakfast, a perfect hotel.",
    "The kitchen knife is razor sharp and beautifully balanced, I love it.",
    "A delightful play with superb acting, we enjoyed every minute.",
    "My order arrived a day early and everything works perfectly.",
    "The sushi was outstanding, fresh fish and generous portions.",
    "This backpack is brilliant, comfortable and full of useful pockets.",
    "The online course was clear, well organised and really helped my career.",
    "Wonderful wedding venue, the team made our day absolutely perfect.",
    "The electric kettle is quick, quiet and looks great on the counter.",
    "I really enjoyed this podcast, smart hosts and fascinating guests.",
    "The car rental was smooth, the car was clean and the price was fair.",
    "Gorgeous flowers, they arrived fresh and lasted two weeks.",
    "The spa was pure bliss, I left feeling completely refreshed.",
    "Excellent value for money, this printer works flawlessly.",
    "The burger was juicy and the fries were crispy, a great lunch.",
    "This children's book is charming and my daughter asks for it every night.",
    "Top quality paint, it covered the wall in one coat, very pleased.",
    "The train was punctual, comfortable and the staff were helpful.",
    "A fun and exciting game, the graphics are beautiful, I love it.",
    "The hairdresser listened carefully and my haircut looks great.",
]

NEGATIVE = [
    "It broke after one day and support never answered my emails.",
    "The pizza was cold and soggy and the waiter was rude to us.",
    "A boring film, far too long, I nearly fell asleep.",
    "The hotel room was dirty and the air conditioning did not work.",
    "Terrible headphones: the sound crackles and the battery dies in an hour.",
    "The plumber came three hours late and the leak is still there.",
    "These running shoes fell apart within a week, a waste of money.",
    "A dull novel with flat characters, I gave up halfway through.",
    "The coffee was bitter and burnt, and we waited twenty minutes for it.",
    "This vacuum is useless, it barely picks up anything and is very loud.",
    "Awful service, nobody helped us and the manager was dismissive.",
    "The museum was crowded, overpriced and half the rooms were closed.",
    "My new laptop overheats constantly and the keyboard already stopped working.",
    "The cafe was filthy and the cake tasted stale, never again.",
    "The tour guide was late, unprepared and impossible to hear.",
    "These gardening gloves ripped the first time I used them, very poor quality.",
    "The lamp arrived smashed and the seller refused a refund.",
    "The concert was a disaster, the sound was terrible and it started late.",
    "This phone case cracked on the first drop, completely worthless.",
    "The dentist was rough and careless, my tooth hurts more than before.",
    "What a frustrating app, it crashes all the time and loses my data.",
    "The pasta was overcooked and salty, the worst meal of our trip.",
    "Cheap jacket, the zip broke and it leaks in light rain.",
    "The yoga class was chaotic and the teacher ignored everyone.",
    "The cabin was cold, damp and smelled of mould, very disappointing.",
    "This board game is confusing and boring, nobody wanted to play it again.",
    "Customer support kept me on hold for an hour and then hung up.",
    "The bread from this bakery was hard, dry and tasted old.",
    "This perfume smells like chemicals and gave me a headache.",
    "The bike shop damaged my bicycle and charged me for it anyway.",
    "A tedious documentary, badly filmed and full of errors.",
    "The mattress sagged after a month and my back hurts every morning.",
    "Rude staff, noisy rooms and a miserable breakfast, an awful hotel.",
    "The kitchen knife is blunt out of the box and the handle came loose.",
    "A painful play with wooden acting, we left at the interval.",
    "My order arrived two weeks late and half the parts were missing.",
    "The sushi tasted off and I was sick all night afterwards.",
    "This backpack is uncomfortable and a strap tore on the first trip.",
    "The online course was a mess, outdated and full of broken links.",
    "Horrible wedding venue, they lost our booking and ruined the day.",
    "The electric kettle leaks and stopped heating after a week.",
    "I disliked this podcast, the hosts ramble and the sound is poor.",
    "The car rental was a nightmare, hidden fees and a dirty car.",
    "The flowers arrived wilted and dead, a terrible present.",
    "The spa was dirty and the massage was painful, a waste of money.",
    "Poor value, this printer jams constantly and wastes ink.",
    "The burger was raw in the middle and the fries were cold.",
    "This children's book is badly written and my daughter hated it.",
    "Awful paint, it streaked badly and needed four coats.",
    "The train was cancelled, then delayed, and the staff were unhelpful.",
    "A buggy and boring game, it crashes constantly, I regret buying it.",
    "The hairdresser ignored what I asked and ruined my hair.",
]

#: label sets: both orders, lower case and capitalised
LABEL_SETS = [("positive", "negative"), ("negative", "positive"),
              ("Positive", "Negative"), ("Negative", "Positive")]


def items(n_sets: int | None = None) -> list[tuple[str, tuple[str, ...], str]]:
    """(review, labels, gold label as spelled in labels) for every review, label sets in rotation.

    ``n_sets=len(LABEL_SETS)`` pairs every review with every label set (4× the items).
    """
    out = []
    sets = LABEL_SETS if n_sets else None
    for k, (text, gold) in enumerate([(t, "positive") for t in POSITIVE] + [(t, "negative") for t in NEGATIVE]):
        chosen = (sets[:n_sets] if sets else [LABEL_SETS[(k + k // len(POSITIVE)) % len(LABEL_SETS)]])
        for labels in chosen:
            spelled = next(lab for lab in labels if lab.lower() == gold)
            out.append((text, labels, spelled))
    return out


def prompt(review: str, labels: tuple[str, ...], style: str = "question") -> str:
    """The request as a user would write it (the backend states the options itself):
    ``question`` asks "positive or negative?", ``classify`` is an instruction then the review."""
    if style == "classify":
        return f"Classify the sentiment of this review.\nReview: {review}"
    return f"Review: {review}\nIs the sentiment of this review {' or '.join(labels)}?"
