#!/usr/bin/env python3
"""Generates ferrotune's quickstart dialogue-summarisation dataset: train.jsonl and eval.jsonl.

Each row has a `dialogue` (a chat between two to four named people, one `Name: message` line per
turn) and a `summary` (one factual sentence naming the people). The dialogues come from scenario
templates (plans, errands, borrowing, work, travel, pets, gifts, exams, cooking, repairs, sport,
...) filled with names, times, places and objects drawn from a fixed-seed generator, then made
informal now and then (abbreviations, the odd misspelling, emoji, lower case). Every row is
distinct, and no dialogue or summary of the evaluation file appears in the training file.

Plain Python 3, no dependencies; the output depends only on SEED:

    python3 data/quickstart/generate.py
"""

import json
import random
from pathlib import Path

SEED = 20251125
N_TRAIN = 300
N_EVAL = 40
HERE = Path(__file__).resolve().parent

NAMES = [
    "Anna", "Ben", "Chloe", "David", "Emma", "Farid", "Grace", "Hugo", "Isla", "Jamal", "Kate", "Liam",
    "Maya", "Noah", "Olivia", "Pedro", "Quinn", "Rosa", "Sam", "Tara", "Umar", "Vera", "Will", "Xenia",
    "Yusuf", "Zoe", "Aiko", "Bruno", "Carmen", "Dmitri", "Elif", "Finn", "Gita", "Hannah", "Ivan", "Julia",
    "Kwame", "Lucia", "Marco", "Nadia", "Oscar", "Priya", "Rafael", "Sofia", "Tom", "Uma", "Victor", "Wen",
    "Yara", "Zaid", "Leo", "Mia", "Ella", "Jonas", "Amara", "Ravi", "Ines", "Theo", "Nina", "Omar",
]
DAYS = ["Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday"]
TIMES = ["8 am", "9 am", "9:30", "10 am", "11 am", "noon", "1 pm", "2:30", "3 pm", "4 pm", "5 pm", "5:30",
         "6 pm", "6:30", "7 pm", "7:30", "8 pm", "9 pm"]
PICKUP_PLACES = ["the station", "the airport", "the bus stop", "the library", "school", "the gym", "the office",
                 "the hospital", "the ferry terminal", "the shopping centre"]
RESTAURANTS = ["Luigi's", "the Golden Dragon", "Bistro Nova", "the Red Lion", "Sakura", "Casa Pepe",
               "the Curry House", "Blue Fin", "the Green Table", "Mama Rosa's"]
CAFES = ["Bean There", "the corner cafe", "Brew Lab", "Café Lumière", "the bakery on Main Street", "Cup & Co"]
CITIES = ["Lisbon", "Berlin", "Edinburgh", "Prague", "Vienna", "Oslo", "Krakow", "Dublin", "Valencia",
          "Amsterdam", "Copenhagen", "Rome", "Budapest", "Porto", "Seville"]
PARKS = ["the park", "Riverside Park", "Victoria Park", "the botanical garden", "Greenfield Park", "the woods"]
BORROWABLES = ["drill", "tent", "ladder", "camera", "projector", "bike pump", "suitcase", "sewing machine",
               "car jack", "board game", "hair dryer", "blender", "sleeping bag", "tripod", "printer"]
LOSTABLES = ["keys", "wallet", "phone charger", "glasses", "scarf", "umbrella", "headphones", "notebook",
             "bank card", "water bottle"]
LOST_PLACES = ["the kitchen", "the car", "the sofa", "the office", "the gym locker", "the pub", "the classroom",
               "the bathroom", "the hallway"]
PETS = ["cat", "dog", "rabbit", "hamster", "parrot", "goldfish", "tortoise", "guinea pigs"]
PET_SYMPTOMS = ["won't eat", "keeps sneezing", "is limping", "has been sick twice", "is scratching a lot",
                "seems very tired"]
SUBJECTS = ["maths", "chemistry", "history", "biology", "economics", "physics", "French", "statistics",
            "law", "geography"]
GRADES = ["an A", "a B", "a B+", "an A-", "a C", "94%", "88%", "a distinction", "a merit"]
DISHES = ["lasagne", "curry", "a mushroom risotto", "tacos", "pancakes", "a vegetable stir-fry", "chili",
          "a fish pie", "pasta carbonara", "a lentil soup"]
INGREDIENTS = ["garlic", "parmesan", "fresh basil", "limes", "coconut milk", "eggs", "rice", "tortillas",
               "sour cream", "ginger"]
APPLIANCES = ["washing machine", "fridge", "boiler", "dishwasher", "oven", "laptop", "bike", "tap",
              "heater", "car"]
SPORTS = [("tennis", ["the tennis club", "the courts in the park"]),
          ("football", ["the sports centre", "the school pitch"]),
          ("badminton", ["the leisure centre", "the university hall"]),
          ("basketball", ["the outdoor court", "the sports hall"]),
          ("squash", ["the squash club", "the gym"]),
          ("volleyball", ["the beach", "the community centre"])]
TEAMS = ["United", "City", "the Lions", "the Tigers", "Rovers", "the Eagles", "Athletic", "the Sharks"]
DOCS = ["report", "presentation", "budget", "proposal", "contract draft", "slides", "project plan", "newsletter"]
COMPANIES = ["Nordtek", "GreenLeaf", "Bluewave Media", "Harbor Bank", "Pixelworks", "Orion Labs",
             "Sunrise Foods", "Atlas Logistics"]
GIFTS = ["a watch", "a cookbook", "concert tickets", "a scarf", "a plant", "headphones", "a board game",
         "a voucher for the spa", "a photo album", "a coffee machine"]
FILMS = ["the new Bond film", "Dune", "a horror film", "the Pixar film", "the documentary about whales",
         "an old Hitchcock film", "the new Marvel film", "a romcom"]
BANDS = ["Coldplay", "the Arctic Monkeys", "Adele", "Muse", "Florence + the Machine", "Dua Lipa",
         "the local jazz band", "Imagine Dragons"]
SNACKS = ["crisps", "cake", "a salad", "sandwiches", "dips", "fruit", "pizza", "cookies"]
DRINKS = ["drinks", "beer", "wine", "juice", "lemonade", "cider"]
APPOINTMENTS = ["dentist", "doctor", "hairdresser", "optician", "physio", "vet"]
CLASSES = ["yoga", "Spanish", "pottery", "salsa", "piano", "swimming", "guitar", "cooking"]
ACTIVITIES = ["picnic", "hike", "barbecue", "bike ride", "beach trip", "fishing trip"]
AMOUNTS = ["£10", "£15", "£20", "£25", "£30", "£40", "€12", "€18", "€25", "€50", "$20", "$35"]
OWED_FOR = ["the pizza", "the concert ticket", "the taxi", "the groceries", "the birthday present",
            "the cinema tickets", "the electricity bill", "the train ticket"]
SHOP_ITEMS = ["milk", "bread", "eggs", "bananas", "coffee", "toilet paper", "tomatoes", "cheese", "butter",
              "rice", "pasta", "apples", "onions", "yoghurt"]
TRANSPORT = ["train", "bus", "plane", "ferry"]
NUMBERS = ["two", "three", "four", "five", "six", "eight", "ten"]
MINUTES = ["5", "10", "15", "20", "30"]

# Informal rewrites applied now and then (whole words only), and misspellings of filler words.
SHORT_FORMS = {"you": "u", "please": "pls", "thanks": "thx", "tomorrow": "tmrw", "okay": "ok", "are": "r",
               "because": "cos", "see you": "cu", "I don't know": "idk", "to be honest": "tbh"}
MISSPELLINGS = {"definitely": "definately", "tomorrow": "tommorow", "really": "realy", "because": "becuase",
                "probably": "probly", "though": "tho", "separate": "seperate", "going": "goin",
                "tonight": "tonite", "sure": "shure", "weird": "wierd"}
EMOJI = ["😂", "👍", "🙂", "😊", "🙏", "😅", "🎉", "❤️", "😍", "😬", "🤞", "👌", "😉", "🥳", "😴"]
CLOSERS = ["ok", "cool", "👍", "haha", "lol", "bye!", "cu", "😂", "xx", "🙂"]
GREETINGS = [("Hey", "Hi!"), ("Hi, you there?", "Yep, what's up?"), ("Hello 🙂", "Hey you"),
             ("Morning!", "Morning"), ("Quick question", "Go on"), ("hiya", "hey")]
ACKS = ["ok", "okay", "cool", "great", "perfect", "sounds good", "deal", "thanks!", "sure", "np", "lovely",
        "good", "alright", "brilliant"]


def pick(r, options):
    return r.choice(options)


def day_phrase(r):
    return pick(r, DAYS + ["tomorrow", "Saturday", "Friday"])


def on(day):
    """'on Friday' or 'tomorrow'."""
    return day if day in ("tomorrow", "tonight", "today") else f"on {day}"


def ack(r):
    return pick(r, ACKS)


# Each scenario takes the generator and the people (first is the one who starts) and returns the
# turns as (speaker, text) and the summary.

def pickup(r, p):
    a, b = p
    place, time = pick(r, PICKUP_PLACES), pick(r, TIMES)
    turns = [(a, pick(r, [f"Could you pick me up from {place}?", f"Any chance you can get me at {place}?",
                          f"Can you collect me from {place} later?"])),
             (b, pick(r, ["Sure, what time?", "Yes, when?", "No problem. When do you get in?"])),
             (a, pick(r, [f"At {time}", f"{time} if that works", f"Around {time}, I'll text when I'm there"]))]
    if r.random() < 0.5:
        turns.append((b, pick(r, [f"OK, I'll be there at {time}", "Fine, see you then", "Deal, wait by the entrance"])))
    turns.append((a, ack(r)))
    return turns, f"{b} will pick {a} up from {place} at {time}."


def dinner(r, p):
    a, b = p
    place, day, time = pick(r, RESTAURANTS), day_phrase(r), pick(r, TIMES[9:])
    turns = [(a, pick(r, [f"Dinner {on(day)}?", f"Fancy dinner {on(day)}?", f"Are you free for dinner {on(day)}?"])),
             (b, pick(r, ["Yes! Where?", "Sure, where do you want to go?", "Definitely, I'm starving already"])),
             (a, pick(r, [f"What about {place}?", f"{place}? I've heard good things", f"Let's try {place}"])),
             (b, pick(r, ["Love it", "Good idea", "Perfect, I'll book"])),
             (a, pick(r, [f"{time}?", f"Shall we say {time}?", f"Meet there at {time}"])),
             (b, ack(r))]
    return turns, f"{a} and {b} are having dinner at {place} {on(day)} at {time}."


def running_late(r, p):
    a, b = p
    minutes, place = pick(r, MINUTES), pick(r, CAFES + RESTAURANTS + ["the cinema", "the station"])
    cause = pick(r, ["the bus is stuck in traffic", "my train got delayed", "I missed the tram",
                     "I couldn't find my keys", "work ran over"])
    turns = [(a, pick(r, [f"Sorry, running {minutes} minutes late", f"I'll be {minutes} min late, sorry!"])),
             (a, cause),
             (b, pick(r, ["No worries", "No rush", "OK, I'll get a table", "Fine, I'll wait inside"])),
             (b, pick(r, [f"I'm at {place} already", f"I'm inside {place}", f"Just got to {place}"]))]
    if r.random() < 0.5:
        turns.append((a, pick(r, ["Order me a coffee pls", "Thanks, almost there", "Be there asap"])))
    return turns, f"{a} is running {minutes} minutes late to meet {b} at {place}."


def borrow(r, p):
    a, b = p
    item, day = pick(r, BORROWABLES), pick(r, DAYS)
    turns = [(a, pick(r, [f"Hey, could I borrow your {item}?", f"Do you still have that {item}? Can I borrow it?",
                          f"Any chance I could borrow your {item} this week?"])),
             *pick(r, [[(b, "Sure, what for?"), (a, pick(r, ["A small job at home", "Camping trip", "My sister's visiting"]))],
                       [(b, "Sure, when do you need it?"), (a, pick(r, ["This weekend", "From Thursday", "Tomorrow morning"]))],
                       [(b, "Yes of course"), (a, "Great, just for a few days")]]),
             (a, f"I'll give it back by {day}"),
             (b, pick(r, [f"Fine, {day} is good", "No problem, come and get it", "OK, it's in the garage"]))]
    if r.random() < 0.4:
        turns.append((a, ack(r)))
    return turns, f"{b} will lend {a} the {item} until {day}."


def cannot_lend(r, p):
    a, b = p
    item = pick(r, BORROWABLES)
    reason, why = pick(r, [("it's broken", "it is broken"), ("my brother has it", f"{b}'s brother has it"),
                           ("I lent it to Jo last week", "it is already lent out"),
                           ("I sold it", "it was sold")])
    turns = [(a, pick(r, [f"Can I borrow your {item}?", f"Could you lend me your {item} tomorrow?"])),
             (b, pick(r, ["Sorry, can't", "I'd love to but no", "Ah, bad timing"])),
             (b, reason),
             (a, pick(r, ["No worries, I'll ask someone else", "Oh ok, never mind", "Ah shame, thanks anyway"]))]
    return turns, f"{b} can't lend {a} the {item} because {why}."


def groceries(r, p):
    a, b = p
    x, y = r.sample(SHOP_ITEMS, 2)
    turns = [(a, pick(r, ["Are you still in town?", "Where are you?", "Are you on your way home?"])),
             (b, pick(r, ["Yes, leaving soon", "Just leaving work", "On the bus now"])),
             (a, pick(r, [f"Can you grab {x} and {y}?", f"Could you buy {x} and {y} on the way?",
                          f"We need {x} and {y}, can you get some?"])),
             (b, pick(r, ["Sure", "Will do", "OK, anything else?"]))]
    if turns[-1][1] == "OK, anything else?":
        turns.append((a, "No, that's all, thanks"))
    return turns, f"{b} will buy {x} and {y} for {a} on the way home."


def pet_sitting(r, p):
    a, b = p
    pet, day = pick(r, PETS), pick(r, DAYS)
    turns = [(a, pick(r, [f"I'm away until {day}, could you feed my {pet}?",
                          f"Big favour: can you look after my {pet} while I'm away? Back on {day}"])),
             (b, pick(r, ["Of course!", "Sure, happy to", "Yes, no problem"])),
             (a, pick(r, ["The key is under the mat", "I'll leave the key with the neighbour",
                          "Food is in the cupboard by the door"])),
             (b, pick(r, ["Got it", "Perfect", "OK 👍"])),
             (a, pick(r, ["You're a star", "Thank you so much", "I owe you one"]))]
    return turns, f"{b} will look after {a}'s {pet} until {day}."


def vet(r, p):
    a, b = p
    pet, symptom, time = pick(r, PETS[:5]), pick(r, PET_SYMPTOMS), pick(r, TIMES)
    turns = [(a, f"The {pet} {symptom}"),
             *pick(r, [[(b, "Since when?"), (a, pick(r, ["Since yesterday", "Since this morning", "A couple of days now"]))],
                       [(b, pick(r, ["Oh no", "Poor thing", "Oh no, poor thing"]))]]),
             (a, pick(r, [f"I'm taking it to the vet at {time}", f"Got a vet appointment at {time}"])),
             (b, pick(r, ["Let me know what they say", "Keep me posted", "Do you want me to come?"]))]
    return turns, f"{a} tells {b} that the {pet} {symptom} and is going to the vet at {time}."


def gift(r, p):
    a, b, c = p
    idea, other = r.sample(GIFTS, 2)
    turns = [(a, pick(r, [f"What should we get {c} for their birthday?", f"{c}'s birthday is next week, any gift ideas?"])),
             (b, pick(r, [f"Maybe {other}?", f"{other}?"])),
             (a, pick(r, [f"Hmm, I was thinking {idea}", f"They already have that. What about {idea}?"])),
             (b, pick(r, ["Good idea, let's do that", "Yes, they'd love it", "OK, let's go with that"])),
             (a, pick(r, ["Split it?", "We can split the cost", "Half each?"])),
             (b, pick(r, ["Sure", "Deal", "Yes, send me the amount"]))]
    return turns, f"{a} and {b} will buy {c} {idea} for their birthday and split the cost."


def exam_notes(r, p):
    a, b = p
    subject, day = pick(r, SUBJECTS), pick(r, DAYS)
    turns = [(a, pick(r, [f"Do you have the {subject} notes from last week?", f"Can I have your {subject} notes?"])),
             (a, pick(r, [f"The exam is on {day} and I missed two lectures", f"Exam {on(day)} and I'm panicking"])),
             (b, pick(r, ["Sure, I'll send them tonight", "Yes, I'll email them later", "I'll share them now"])),
             (a, pick(r, ["Lifesaver", "Thank you!!", "You're the best"]))]
    if r.random() < 0.4:
        turns.append((b, pick(r, ["Good luck!", "We'll be fine", "Let's revise together?"])))
    return turns, f"{b} will send {a} the {subject} notes for the exam on {day}."


def exam_result(r, p):
    a, b = p
    subject, grade = pick(r, SUBJECTS), pick(r, GRADES)
    turns = [(b, pick(r, [f"Did you get your {subject} result?", f"Any news about the {subject} exam?"])),
             (a, pick(r, ["Yes!!", "Just got it", "Finally, yes"])),
             (a, pick(r, [f"I got {grade}", f"{grade}, can't believe it"])),
             (b, pick(r, ["Congrats!", "Amazing, well done", "Told you you'd be fine"])),
             (a, pick(r, ["Thanks 😊", "Drinks on me tonight", "So relieved"]))]
    return turns, f"{a} got {grade} in the {subject} exam and {b} is happy for {a}."


def cooking(r, p):
    a, b = p
    dish, ingredient = pick(r, DISHES), pick(r, INGREDIENTS)
    turns = [(a, pick(r, ["What should I cook tonight?", "I'm cooking tonight, what do you fancy?", "Any dinner ideas?"])),
             (b, pick(r, [f"How about {dish}?", f"{dish}?", f"You make great {dish}"]))]
    turns.append((a, pick(r, [f"Good idea, but I'm out of {ingredient}", f"OK, {dish} it is, but I have no {ingredient}"])))
    turns.append((b, pick(r, [f"I'll bring {ingredient}", f"I'll pick up some {ingredient} on my way"])))
    turns.append((a, ack(r)))
    return turns, f"{a} is cooking {dish} tonight and {b} will bring {ingredient}."


def repair(r, p):
    a, b = p
    thing, day = pick(r, APPLIANCES), pick(r, DAYS)
    problem = pick(r, ["is broken again", "stopped working", "is making a weird noise", "is leaking"])
    turns = [(a, f"My {thing} {problem}"),
             *pick(r, [[(b, "Have you tried turning it off and on?"), (a, pick(r, ["Yes, nothing works", "Didn't help", "Of course"]))],
                       [(b, pick(r, ["Ugh, again?", "Oh no"])), (a, pick(r, ["Second time this month", "And the landlord isn't answering"]))]]),
             (b, pick(r, [f"I can have a look {on(day)}", f"I could come and fix it {on(day)}"])),
             (a, pick(r, ["That would be amazing", "Really? Thanks!", "You're a hero"]))]
    return turns, f"{b} will try to fix {a}'s {thing} {on(day)}."


def repair_pro(r, p):
    a, b = p
    thing = pick(r, APPLIANCES[:5])
    pro = pick(r, ["Mr Patel", "Jan the plumber", "FixIt Services", "Olek", "a guy called Dave", "QuickRepair"])
    turns = [(a, pick(r, [f"Do you know anyone who repairs a {thing}?", f"My {thing} died. Know a good repair person?"])),
             (b, pick(r, [f"Call {pro}", f"{pro} fixed ours last year", f"Try {pro}, very reliable"])),
             (a, pick(r, ["Expensive?", "Are they quick?", "Thanks, do you have the number?"])),
             (b, pick(r, ["Not bad at all", "Fair price", "I'll send you the number"])),
             (a, ack(r))]
    return turns, f"{b} recommends {pro} to repair {a}'s {thing}."


def sport(r, p):
    a, b = p
    game, venues = pick(r, SPORTS)
    venue, day, time = pick(r, venues), pick(r, DAYS), pick(r, TIMES)
    turns = [(a, pick(r, [f"{game} {on(day)}?", f"Up for some {game} {on(day)}?", f"Want to play {game} {on(day)}?"])),
             (b, pick(r, ["Yes!", "Sure, where?", "Always"])),
             (a, pick(r, [f"{venue}, {time}", f"At {venue} at {time}?", f"I booked {venue} for {time}"])),
             (b, pick(r, ["See you there", "I'll bring the balls", "Perfect"]))]
    return turns, f"{a} and {b} will play {game} at {venue} {on(day)} at {time}."


def match_result(r, p):
    a, b = p
    team, other = r.sample(TEAMS, 2)
    score = pick(r, ["2-1", "3-0", "1-0", "4-2", "2-0", "3-1"])
    turns = [(a, pick(r, ["Did you see the match?", "Were you watching last night?"])),
             (b, pick(r, ["Only the second half", "Yes!!", "No, what happened?"])),
             (a, pick(r, [f"{team} won {score} against {other}", f"{team} beat {other} {score}"])),
             (b, pick(r, ["Unbelievable", "Finally!", "About time"]))]
    return turns, f"{team} beat {other} {score}, as {a} tells {b}."


def meeting_moved(r, p):
    a, b = p
    day = pick(r, DAYS[:5])
    t1, t2 = r.sample(TIMES[:12], 2)
    turns = [(a, pick(r, [f"Heads up: the meeting {on(day)} moved from {t1} to {t2}",
                          f"FYI our {t1} meeting {on(day)} is now at {t2}"])),
             (b, pick(r, ["Thanks for letting me know", "OK, noted", "Same room?"]))]
    if turns[-1][1] == "Same room?":
        turns.append((a, "Yes, same room"))
    turns.append((b, ack(r)))
    return turns, f"{a} tells {b} that the meeting {on(day)} has moved from {t1} to {t2}."


def review_doc(r, p):
    a, b = p
    doc, day = pick(r, DOCS), pick(r, DAYS[:5])
    turns = [(a, pick(r, [f"Could you review my {doc}?", f"Have you got time to look at the {doc}?"])),
             (b, pick(r, ["When do you need it?", "Sure, deadline?", "Busy week, but yes"])),
             (a, pick(r, [f"By {day} if possible", f"{day} at the latest"])),
             (b, pick(r, [f"OK, you'll have my comments by {day}", f"Fine, I'll do it before {day}"]))]
    return turns, f"{b} will review {a}'s {doc} by {day}."


def cover_shift(r, p):
    a, b = p
    day = pick(r, DAYS)
    illness = pick(r, ["a fever", "the flu", "a migraine", "a bad cold", "food poisoning"])
    turns = [(a, pick(r, [f"I've got {illness}", f"Feeling awful, I think it's {illness}"])),
             (a, pick(r, [f"Can you cover my shift {on(day)}?", f"Any chance you could take my shift {on(day)}?"])),
             (b, pick(r, ["Sure, get well soon", "Yes, rest up", "No problem, I'll tell the manager"])),
             (a, pick(r, ["Thank you", "I owe you", "You're a lifesaver"]))]
    return turns, f"{b} will cover {a}'s shift {on(day)} because {a} has {illness}."


def travel_booking(r, p):
    a, b = p
    city, mode, day, time = pick(r, CITIES), pick(r, TRANSPORT), pick(r, DAYS), pick(r, TIMES)
    turns = [(b, pick(r, [f"Did you book the tickets to {city}?", f"Have we got {mode} tickets for {city} yet?"])),
             (a, pick(r, ["Yes, just now", "Done!", "Booked this morning"])),
             (a, pick(r, [f"The {mode} leaves {on(day)} at {time}", f"We go {on(day)}, {mode} at {time}"])),
             (b, pick(r, ["Can't wait", "Yay", "Perfect, I'll pack tonight"]))]
    return turns, f"{a} tells {b} that their {mode} to {city} leaves {on(day)} at {time}."


def group_trip(r, p):
    a, b, c = p
    city, other = r.sample(CITIES, 2)
    turns = [(a, "Weekend trip, where shall we go?"),
             (b, pick(r, [f"{other}?", f"I vote {other}"])),
             (c, pick(r, [f"Been to {other} twice. What about {city}?", f"{city} is cheaper this time of year"])),
             (a, pick(r, [f"{city} sounds good", f"I'm in for {city}"])),
             (b, pick(r, [f"Fine, {city} it is", "OK, outvoted 😅"])),
             (c, pick(r, ["I'll look for flights", "I'll find a place to stay"]))]
    return turns, f"{a}, {b} and {c} are going to {city} for the weekend."


def found_item(r, p):
    a, b = p
    item, place = pick(r, LOSTABLES), pick(r, LOST_PLACES)
    they, them = ("They're", "them") if item in ("keys", "glasses", "headphones") else ("It's", "it")
    turns = [(a, pick(r, [f"Have you seen my {item}?", f"I can't find my {item} anywhere"])),
             (b, pick(r, [f"{they} in {place}", f"I found {them} in {place}"])),
             (a, pick(r, ["Phew, thank you", "Oh thank god", "What would I do without you"]))]
    return turns, f"{b} found {a}'s {item} in {place}."


def moving(r, p):
    a, b, c = p
    day = pick(r, ["Saturday", "Sunday", "Friday"])
    both = r.random() < 0.5
    turns = [(a, pick(r, [f"I'm moving {on(day)}, can you help?", f"Moving day is {day}, anyone free to help?"])),
             (b, pick(r, ["Sure, what time?", "I'm in", "Count me in"]))]
    if both:
        turns.append((c, pick(r, ["Me too", "I can come as well", "I'll bring my van"])))
        summary = f"{b} and {c} will help {a} move {on(day)}."
    else:
        turns.append((c, pick(r, ["Sorry, I'm away that weekend", "Can't, I'm working", "Sorry, family stuff"])))
        summary = f"{b} will help {a} move {on(day)}, but {c} can't."
    turns.append((a, pick(r, ["Thanks guys!", "Pizza on me", "You're the best"])))
    return turns, summary


def movie_night(r, p):
    a, b = p
    film, time = pick(r, FILMS), pick(r, TIMES[10:])
    place, where = pick(r, [("the cinema", "the cinema"), ("my place", f"{a}'s place"),
                            ("the open-air cinema", "the open-air cinema")])
    turns = [(a, pick(r, ["Movie tonight?", "Film tonight?"])),
             (b, pick(r, ["Yes! Which one?", "Sure, what's on?"])),
             (a, pick(r, [f"{film}?", f"What about {film}?"])),
             (b, pick(r, ["Perfect", "I've been wanting to see that", "OK"])),
             (a, pick(r, [f"{time} at {place}?", f"Let's do {time}, {place}"])),
             (b, ack(r))]
    return turns, f"{a} and {b} will watch {film} at {where} at {time} tonight."


def spare_ticket(r, p):
    a, b = p
    band, day, amount = pick(r, BANDS), pick(r, DAYS), pick(r, AMOUNTS)
    turns = [(a, pick(r, [f"I have a spare ticket for {band} {on(day)}, want it?", f"Anyone want my extra {band} ticket for {day}?"])),
             (b, pick(r, ["Yes!!! How much?", "Me! How much?"])),
             (a, f"{amount}"),
             (b, pick(r, ["Deal, I'll send it now", "Bargain, sending it now", "Done, transferring now"])),
             (a, pick(r, ["👍", "Got it, thanks", "Great, see you there"]))]
    return turns, f"{b} will buy {a}'s spare ticket for {band} {on(day)} for {amount}."


def appointment_reminder(r, p):
    a, b = p
    kind, day, time = pick(r, APPOINTMENTS[:5]), pick(r, DAYS[:5]), pick(r, TIMES[:12])
    turns = [(a, pick(r, [f"Don't forget your {kind} appointment {on(day)} at {time}",
                          f"Reminder: {kind} {on(day)}, {time}"])),
             (b, pick(r, ["Oh god, I had forgotten", "Thanks, I'd totally forgotten", "I know, I know"])),
             (a, pick(r, ["That's what I'm here for", "😂", "Set an alarm"]))]
    return turns, f"{a} reminds {b} of the {kind} appointment {on(day)} at {time}."


def car_lift(r, p):
    a, b = p
    place, time = pick(r, PICKUP_PLACES[4:] + ["work", "the city centre"]), pick(r, TIMES[:8])
    turns = [(a, pick(r, ["My car won't start", "Car's dead again 😩", "The car battery is flat"])),
             (a, pick(r, [f"Could you give me a lift to {place}?", f"Any chance of a lift to {place}?"])),
             (b, pick(r, [f"Sure, I'll come by at {time}", f"Yes, I'll pick you up at {time}"])),
             (a, pick(r, ["Thanks a million", "You're a star", "Great, thanks"]))]
    return turns, f"{b} will give {a} a lift to {place} at {time} because {a}'s car won't start."


def babysitting(r, p):
    a, b = p
    day, time = pick(r, DAYS), pick(r, TIMES[12:])
    turns = [(a, pick(r, [f"Could you babysit {on(day)} evening?", f"Are you free to watch the kids {on(day)} night?"])),
             (b, pick(r, ["What time?", "Sure, from when?"])),
             (a, pick(r, [f"From {time}", f"{time} until late"])),
             (b, pick(r, ["No problem", "Sure, I'll be there", "Fine, they love me anyway"])),
             (a, pick(r, ["Thank you!!", "You're the best", "Great, thanks"]))]
    return turns, f"{b} will babysit {a}'s kids {on(day)} from {time}."


def party(r, p):
    a, b, c = p
    day, drink, snack = pick(r, ["Friday", "Saturday"]), pick(r, DRINKS), pick(r, SNACKS)
    turns = [(a, pick(r, [f"Party at mine {on(day)}!", f"I'm throwing a party {on(day)}, you coming?"])),
             (b, pick(r, [f"Yes! I'll bring {drink}", f"Wouldn't miss it, I'll bring {drink}"])),
             (c, pick(r, [f"I'm in, I can bring {snack}", f"Yay, I'll make {snack}"])),
             (a, pick(r, ["Perfect", "Great, see you then", "🥳"]))]
    return turns, f"{a} is having a party {on(day)}; {b} will bring {drink} and {c} will bring {snack}."


def reservation(r, p):
    a, b = p
    n, place, day, time = pick(r, NUMBERS), pick(r, RESTAURANTS), pick(r, DAYS), pick(r, TIMES[10:])
    turns = [(b, pick(r, ["Did you manage to book a table?", "Any luck with the reservation?"])),
             (a, pick(r, [f"Yes, {place}, table for {n}", f"Booked {place} for {n} people"])),
             (a, f"{on(day)} at {time}"),
             (b, pick(r, ["Great, I'll tell the others", "Perfect", "Nice one"]))]
    return turns, f"{a} tells {b} that a table for {n} is booked at {place} {on(day)} at {time}."


def parcel(r, p):
    a, b = p
    day = pick(r, DAYS[:5])
    turns = [(a, pick(r, [f"A parcel is coming {on(day)} and I'm at work, could you take it in?",
                          f"Can you grab my parcel {on(day)}? I won't be home"])),
             (b, pick(r, ["Sure, I'm home all day", "No problem", "Yes, I'll keep an eye out"])),
             (a, pick(r, ["Thanks, neighbour!", "Cheers", "You're a star"]))]
    return turns, f"{b} will take in {a}'s parcel {on(day)} while {a} is out."


def running(r, p):
    a, b = p
    park, day, time = pick(r, PARKS), pick(r, DAYS), pick(r, TIMES[:5])
    turns = [(a, pick(r, [f"Run {on(day)} morning?", f"Jog in {park} {on(day)}?"])),
             (b, pick(r, ["Only if it's not too early", "Yes, I need it", "Sure, how far?"])),
             (a, pick(r, [f"{time} in {park}?", f"Meet at {park} at {time}, just 5k"])),
             (b, pick(r, ["OK, see you there", "Deal", "Ugh, fine 😴"]))]
    return turns, f"{a} and {b} will go running in {park} {on(day)} at {time}."


def money_owed(r, p):
    a, b = p
    amount, what = pick(r, AMOUNTS), pick(r, OWED_FOR)
    turns = [(a, pick(r, [f"Hey, you still owe me {amount} for {what}", f"Just a reminder about the {amount} for {what} 🙂"])),
             (b, pick(r, ["Oh sorry, totally forgot", "Oops, sorry!", "Right, my bad"])),
             (b, pick(r, ["Sending it now", "I'll transfer it today", "Will pay you back tonight"])),
             (a, pick(r, ["Thanks", "No rush", "👌"]))]
    return turns, f"{b} will pay {a} back the {amount} for {what} today."


def class_cancelled(r, p):
    a, b = p
    cls, day = pick(r, CLASSES), pick(r, DAYS)
    reason = pick(r, ["the teacher is ill", "the room is being painted", "of the bank holiday", "the instructor is away"])
    turns = [(a, pick(r, [f"The {cls} class {on(day)} is cancelled", f"No {cls} class {on(day)}!"])),
             (b, pick(r, ["Why?", "What happened?", "Oh no, why?"])),
             (a, f"Because {reason}"),
             (b, pick(r, ["Shame", "Oh well, next week then", "More time to rest 😅"]))]
    return turns, f"The {cls} class {on(day)} is cancelled because {reason}, as {a} tells {b}."


def rain_postponed(r, p):
    a, b = p
    activity, day = pick(r, ACTIVITIES), pick(r, DAYS)
    turns = [(a, pick(r, ["Have you seen the forecast?", "It's going to pour all day"])),
             (b, pick(r, ["Yeah, rain all day", "Ugh, yes"])),
             (a, pick(r, [f"Shall we move the {activity} to {day}?", f"Let's postpone the {activity} to {day}"])),
             (b, pick(r, [f"OK, {day} then", "Fine by me", "Good idea"]))]
    return turns, f"{a} and {b} are postponing the {activity} to {day} because of the rain."


def interview(r, p):
    a, b = p
    company, day, time = pick(r, COMPANIES), pick(r, DAYS[:5]), pick(r, TIMES[:10])
    turns = [(a, pick(r, [f"I got an interview at {company}!", f"Guess who has an interview at {company}"])),
             (b, pick(r, ["No way! When?", "Congrats! When is it?"])),
             (a, f"{on(day)} at {time}"),
             (b, pick(r, ["You'll smash it", "Good luck!! 🤞", "Let me know how it goes"]))]
    return turns, f"{a} tells {b} about a job interview at {company} {on(day)} at {time}."


def coffee(r, p):
    a, b = p
    cafe, time = pick(r, CAFES), pick(r, TIMES[:10])
    turns = [(a, pick(r, ["Coffee later?", "Need caffeine. Coffee?", "Quick coffee today?"])),
             (b, pick(r, ["Yes please", "Always", "Sure, when?"])),
             (a, pick(r, [f"{cafe} at {time}?", f"{time} at {cafe}"])),
             (b, ack(r))]
    return turns, f"{a} and {b} will meet for coffee at {cafe} at {time}."


def lend_car(r, p):
    a, b = p
    day, vehicle = pick(r, DAYS), pick(r, ["car", "bike", "van", "scooter"])
    reason = pick(r, ["to visit my gran", "to move some furniture", "for a job interview", "to go to IKEA"])
    turns = [(a, f"Can I borrow your {vehicle} {on(day)}?"),
             (b, pick(r, ["What for?", "Sure, for what?"])),
             (a, reason),
             (b, pick(r, ["OK, just fill it up after", "Fine, keys are on the hook", "Yes, bring it back by evening"])),
             (a, pick(r, ["Of course, thanks", "Will do", "Deal"]))]
    purpose = reason.replace("my gran", f"{a}'s gran")
    return turns, f"{b} will lend {a} the {vehicle} {on(day)} {purpose}."


def group_meeting_time(r, p):
    a, b, c = p
    day, time = pick(r, DAYS[:5]), pick(r, TIMES[2:10])
    turns = [(a, pick(r, [f"Project meeting {on(day)}?", f"When can we meet about the project {on(day)}?"])),
             (b, pick(r, [f"I'm free after {time}", f"{time} works for me"])),
             (c, pick(r, [f"{time} is fine", "Same"])),
             (a, pick(r, [f"OK, {time} in the library", f"{time} it is, I'll book a room"]))]
    return turns, f"{a}, {b} and {c} will meet about the project {on(day)} at {time}."


def leaving_present(r, p):
    a, b, c, d = p
    colleague = pick(r, [n for n in NAMES if n not in p])
    amount, present = pick(r, AMOUNTS), pick(r, GIFTS)
    turns = [(a, pick(r, [f"I'm collecting for {colleague}'s leaving present, {amount} each?",
                          f"{colleague} leaves on Friday! {amount} each for a present?"])),
             (b, pick(r, ["I'm in", "Sure", "Of course"])),
             (c, pick(r, ["Me too", "Count me in", "Yes"])),
             (d, pick(r, ["Sure, what are we getting?", "OK, what's the plan?"])),
             (a, pick(r, [f"I thought {present}", f"{present}, I've seen a nice one"])),
             (d, pick(r, ["Perfect", "Nice", "Love it"]))]
    return turns, f"{b}, {c} and {d} will each give {a} {amount} for {colleague}'s leaving present, {present}."


def chores(r, p):
    a, b, c = p
    jobs = ["do the dishes", "take the bins out", "hoover the living room", "clean the bathroom",
            "do the laundry", "water the plants"]
    ja, jb, jc = r.sample(jobs, 3)
    turns = [(a, pick(r, ["The flat is a mess, guests come tonight", "Cleaning time, people!", "Can we sort the flat out today?"])),
             (b, f"I'll {jb}"),
             (c, pick(r, [f"I can {jc}", f"OK, I'll {jc}"])),
             (a, pick(r, [f"Then I'll {ja}", f"Great, I'll {ja}"]))]
    return turns, f"{b} will {jb}, {c} will {jc} and {a} will {ja}."


def four_way_dinner(r, p):
    a, b, c, d = p
    place, day = pick(r, RESTAURANTS), pick(r, ["Friday", "Saturday"])
    turns = [(a, f"Dinner {on(day)}, all of us?"),
             (b, pick(r, ["Yes!", "I'm in"])),
             (c, pick(r, ["Sure", "Count me in"])),
             (d, pick(r, ["Can't, sorry, I'm away", "Sorry, I'm working late"])),
             (a, pick(r, [f"Shame! Rest of us, {place}?", f"Next time then. {place} for us three?"])),
             (b, pick(r, ["Perfect", "Yes"]))]
    return turns, f"{a}, {b} and {c} will have dinner at {place} {on(day)}, but {d} can't come."


SCENARIOS = [
    (pickup, 2), (dinner, 2), (running_late, 2), (borrow, 2), (cannot_lend, 2), (groceries, 2),
    (pet_sitting, 2), (vet, 2), (gift, 3), (exam_notes, 2), (exam_result, 2), (cooking, 2), (repair, 2),
    (repair_pro, 2), (sport, 2), (match_result, 2), (meeting_moved, 2), (review_doc, 2), (cover_shift, 2),
    (travel_booking, 2), (group_trip, 3), (found_item, 2), (moving, 3), (movie_night, 2), (spare_ticket, 2),
    (appointment_reminder, 2), (car_lift, 2), (babysitting, 2), (party, 3), (reservation, 2), (parcel, 2),
    (running, 2), (money_owed, 2), (class_cancelled, 2), (rain_postponed, 2), (interview, 2), (coffee, 2),
    (lend_car, 2), (group_meeting_time, 3), (four_way_dinner, 4), (leaving_present, 4), (chores, 3),
]


def replace_words(text, table, r, rate):
    """Rewrites whole words (case-sensitive, lower-case keys) from `table`, each with probability `rate`."""
    for plain, informal in table.items():
        start = 0
        while (pos := text.find(plain, start)) >= 0:
            end = pos + len(plain)
            whole = (pos == 0 or not text[pos - 1].isalpha()) and (end == len(text) or not text[end].isalpha())
            if whole and r.random() < rate:
                text = text[:pos] + informal + text[end:]
                end = pos + len(informal)
            start = end
    return text


def capitalise(text):
    """Upper-cases the first letter of each sentence."""
    out, start = [], True
    for i, ch in enumerate(text):
        out.append(ch.upper() if start and ch.isalpha() else ch)
        if ch.isalpha() or ch.isdigit():
            start = False
        if ch in ".?!" and text[i + 1:i + 2] == " ":
            start = True
    return "".join(out)


def informal(r, turns):
    """Chat-style noise on the messages, never on the facts: the tables only touch filler words."""
    style = r.random()
    out = []
    for speaker, text in turns:
        if style < 0.35:
            text = replace_words(text, SHORT_FORMS, r, 0.7)
        if r.random() < 0.12:
            text = replace_words(text, MISSPELLINGS, r, 1.0)
        first = text.split()[0]
        if style > 0.8 and text[:1].isupper() and first not in NAMES and not first.rstrip(",.!?:").isupper():
            text = text[0].lower() + text[1:]
        if r.random() < 0.15 and not any(e in text for e in EMOJI):
            text = f"{text} {r.choice(EMOJI)}"
        out.append((speaker, text))
    # Now and then a short acknowledgement closes the chat.
    if len(out) < 10 and r.random() < 0.2 and out[-1][0] != turns[0][0]:
        out.append((turns[0][0], r.choice(CLOSERS)))
    # And sometimes a greeting opens it.
    if len(out) <= 8 and r.random() < 0.25:
        hello, reply = r.choice(GREETINGS)
        out[:0] = [(turns[0][0], hello), (next(s for s, _ in turns if s != turns[0][0]), reply)]
    return out


def main():
    r = random.Random(SEED)
    rows, dialogues, summaries = [], set(), set()
    attempts = 0
    while len(rows) < N_TRAIN + N_EVAL:
        scenario, n_people = SCENARIOS[len(rows) % len(SCENARIOS)]
        attempts += 1
        assert attempts < 100 * (N_TRAIN + N_EVAL), "scenarios do not vary enough"
        people = r.sample(NAMES, n_people)
        turns, summary = scenario(r, people)
        turns = informal(r, [(speaker, capitalise(text)) for speaker, text in turns])
        summary = capitalise(summary)
        assert 3 <= len(turns) <= 10, (scenario.__name__, turns)
        assert all(name in summary for name in people), (scenario.__name__, summary)
        dialogue = "\n".join(f"{speaker}: {text}" for speaker, text in turns)
        if dialogue in dialogues or summary in summaries:
            continue
        dialogues.add(dialogue)
        summaries.add(summary)
        rows.append({"dialogue": dialogue, "summary": summary})
    r.shuffle(rows)
    for name, part in (("eval.jsonl", rows[:N_EVAL]), ("train.jsonl", rows[N_EVAL:])):
        with open(HERE / name, "w", encoding="utf-8") as f:
            for row in part:
                f.write(json.dumps(row, ensure_ascii=False) + "\n")
        print(f"{name}: {len(part)} rows")


if __name__ == "__main__":
    main()
