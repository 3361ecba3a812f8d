"""A second balanced closed-set task (held out from choices_data.py): 60 short headlines, 3 topics.

20 sports, 20 food, 20 technology; ``items()`` pairs each with one of three rotations of
the label list, so every topic meets every label position equally often (not exactly
for 20 per topic: 7/7/6).
"""

from __future__ import annotations

SPORTS = [
    "The striker scored twice as the home team won the cup final.",
    "She broke the world record in the 400 metres at the championships.",
    "The tennis star withdrew from the tournament with a wrist injury.",
    "Our basketball team lost in overtime after a missed free throw.",
    "The marathon runners set off at dawn through the city streets.",
    "The coach was sacked after the club's tenth defeat of the season.",
    "He won the gold medal in swimming at the Olympic Games.",
    "The cricket match was stopped by rain with the visitors ahead.",
    "The cyclist crashed on the final mountain stage of the race.",
    "The goalkeeper saved a penalty in the last minute of the match.",
    "The boxer kept his heavyweight title after twelve hard rounds.",
    "The rugby side beat their rivals by three tries to one.",
    "The golfer sank a long putt to win the open by one stroke.",
    "The ice hockey league suspended two players for fighting.",
    "The sprinter was disqualified for a false start in the final.",
    "The baseball pitcher threw a perfect game on Sunday.",
    "The skier won the downhill race despite heavy snow.",
    "The volleyball team qualified for the world cup.",
    "The football transfer window closes at midnight on Friday.",
    "The jockey rode the favourite to victory at the horse race.",
]
FOOD = [
    "Simmer the tomatoes with garlic and basil for twenty minutes.",
    "This chocolate cake recipe needs only five ingredients.",
    "The new bakery sells sourdough bread and cinnamon buns.",
    "Add a pinch of salt to the pasta water before boiling.",
    "The chef serves grilled fish with lemon butter and rice.",
    "Roast the vegetables in olive oil until they are golden.",
    "A bowl of hot soup with fresh bread makes a perfect lunch.",
    "The curry was spicy, rich and full of coconut flavour.",
    "Whisk the eggs with sugar until the mixture is pale.",
    "The market stall sells ripe mangoes, cheese and olives.",
    "Our favourite breakfast is pancakes with maple syrup.",
    "The restaurant's dumplings are filled with pork and ginger.",
    "Marinate the chicken in yoghurt and spices overnight.",
    "The salad mixes spinach, feta, walnuts and sliced pears.",
    "Bake the cookies for twelve minutes until the edges brown.",
    "The noodle soup is topped with herbs, chilli and lime.",
    "A good risotto needs patience and plenty of stirring.",
    "The pizza dough should rest for an hour before baking.",
    "Fresh strawberries and cream are a classic summer dessert.",
    "Fry the onions slowly in butter until they caramelise.",
]
TECH = [
    "The new phone has a faster chip and a better camera.",
    "Install the software update to fix the security bug.",
    "The laptop's battery lasts ten hours on a single charge.",
    "Engineers released a new version of the programming language.",
    "The data centre runs thousands of servers for cloud computing.",
    "The app now syncs your files across all your devices.",
    "A new graphics card doubles the speed of machine learning.",
    "The website crashed when millions of users logged in at once.",
    "The company unveiled a robot that can sort parcels.",
    "Researchers built a faster quantum computer processor.",
    "The router update improves wifi speed and range.",
    "Hackers stole passwords from the online service's database.",
    "The smartwatch tracks your heart rate and sleep.",
    "The operating system adds a new dark mode and widgets.",
    "The startup's chatbot answers customer emails automatically.",
    "Electric cars get software upgrades over the internet.",
    "The printer driver no longer works with the latest computer.",
    "The video game console supports higher resolution graphics.",
    "Developers can now deploy code with a single command.",
    "The new tablet comes with a stylus and a keyboard cover.",
]

LABELS = ("sports", "food", "technology")


def items() -> list[tuple[str, tuple[str, ...], str]]:
    """(headline, labels in one of three rotations, gold label)."""
    out = []
    k = 0
    for gold, texts in (("sports", SPORTS), ("food", FOOD), ("technology", TECH)):
        for text in texts:
            s = k % 3
            out.append((text, LABELS[s:] + LABELS[:s], gold))
            k += 1
    return out


def prompt(text: str, labels: tuple[str, ...]) -> str:
    """The request as a user would write it."""
    return f"Text: {text}\nWhat is the topic of this text?"
