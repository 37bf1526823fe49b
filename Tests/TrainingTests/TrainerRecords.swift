import Training

/// The three conversations the training-loop tests fit: two patent-medicine cases and a short English one.
let trainerRecords = [
    Conversation(turns: [.init(instruction: "使用中医知识正确回答适合这个病例的中成药。", input: "我咳嗽痰多。", answer: "推荐用药：急支糖浆。")]),
    Conversation(turns: [.init(instruction: "使用中医知识正确回答适合这个病例的中成药。", input: "我发烧咽痛。", answer: "推荐用药：银翘解毒片。")]),
    Conversation(turns: [.init(instruction: "hello", answer: "hi there")]),
]
